"""Search stays exact whatever rewrote the rows: a seed over a seed (rows written with the audit trail
paused, re-created with lower row versions), documents left behind or pushed "into the future" by
hand, and a rewrite that commits while a sync reads. Exact means: the same ids as PostgreSQL's live
rows, each under its row's organization, each at its row's version."""

from __future__ import annotations

import sqlalchemy as sa
from elasticsearch import Elasticsearch, helpers

from orchestrator_data.postgres import models
from orchestrator_data.postgres.rewrites import audit_paused
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import indices, reconcile, sync, watermarks
from orchestrator_data.search.sources import SYNCED, source_of

import pytest

pytestmark = pytest.mark.integration


def _documents(es: Elasticsearch, layout, name: str) -> dict[str, tuple[str | None, int]]:
    """id -> (organization, version) of every document behind the read alias."""
    es.indices.refresh(index=layout.read_alias(name))
    return {hit["_id"]: (hit["_source"].get("organization_id"), hit["_version"])
            for hit in helpers.scan(es, index=layout.read_alias(name), query={"query": {"match_all": {}}},
                                    version=True, size=1000)}


def _rows(engine, name: str) -> dict[str, tuple[str | None, int]]:
    """id -> (organization, version) of every row that should be a document of `name`."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT s.id, s.organization_id, s.version FROM ({source_of(name).select}) s "
                                    f"WHERE NOT s.deleted"))
        return {str(i): (str(org) if org is not None else None, version) for i, org, version in rows}


def assert_exact(engine, es, layout, names=SYNCED) -> None:
    for name in names:
        documents, rows = _documents(es, layout, name), _rows(engine, name)
        assert set(documents) - set(rows) == set(), f"{name}: orphan documents"
        assert set(rows) - set(documents) == set(), f"{name}: rows without a document"
        wrong = {i for i in rows if documents[i] != rows[i]}
        assert not wrong, f"{name}: {len(wrong)} documents under another organization or version than their row"
        assert reconcile.reconcile(engine, es, layout, name).ok, name


@pytest.fixture
def synced(engine, es, layout):
    seed(engine, "development", SeedPlan(executions=600))
    indices.init_indices(es, layout)
    sync.sync(engine, es, layout)
    assert_exact(engine, es, layout)
    return engine


def test_a_seed_over_a_seed_is_rebuilt_by_the_next_sync(synced, es, layout):
    engine = synced
    # raise row versions, so that the re-created rows come back with lower ones than their documents
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE executions SET status = 'cancelled'"))
        conn.execute(sa.text("UPDATE executions SET status = 'failed'"))
    sync.sync(engine, es, layout)
    seed(engine, "testing", SeedPlan(executions=200))  # replaces the seeded executions, triggers paused

    reports = {r.index: r for r in sync.sync(engine, es, layout)}
    assert reports["executions"].mode == "rebuild"
    assert_exact(engine, es, layout)
    # the rebuild covered the marks: the next sync is incremental again and writes nothing
    again = sync.sync(engine, es, layout)
    assert [(r.mode, r.documents_written, r.documents_deleted) for r in again] == \
        [("incremental", 0, 0)] * len(SYNCED)


def test_a_full_sync_removes_orphans_and_documents_from_the_future(synced, es, layout):
    engine = synced
    alias = layout.read_alias("workflows")
    some = next(iter(_rows(engine, "workflows")))
    es.index(index=alias, id=some, document={"name": "from the future", "organization_id": None},
             version=10**6, version_type="external", refresh=True)
    es.index(index=alias, id="00000000-0000-4000-8000-00000000beef",
             document={"name": "orphan", "organization_id": None}, refresh=True)
    # the reconciliation sees both; an incremental sync cannot mend them (nothing changed in PostgreSQL)
    assert not reconcile.reconcile(engine, es, layout, "workflows").ok
    sync.sync(engine, es, layout, ["workflows"])
    assert "00000000-0000-4000-8000-00000000beef" in _documents(es, layout, "workflows")

    report = sync.sync_index(engine, es, layout, "workflows", full=True)
    assert report.mode == "full"
    assert_exact(engine, es, layout, ["workflows"])
    assert len(indices.index_status(es, layout, "workflows").backing_indices) == 1


def test_a_rewrite_committing_while_a_sync_reads_is_rebuilt_by_the_next(synced, es, layout):
    engine = synced
    rewriter = engine.connect()
    tx = rewriter.begin()
    with audit_paused(rewriter, models.AUDITED_TABLES, "test: a rewrite in flight"):
        rewriter.execute(sa.text("DELETE FROM executions WHERE id IN (SELECT id FROM executions LIMIT 50)"))
    # the sync runs while the rewrite is in flight: it cannot see it and must not step over it
    assert sync.sync_index(engine, es, layout, "executions").mode == "incremental"
    tx.commit()
    rewriter.close()
    assert sync.sync_index(engine, es, layout, "executions").mode == "rebuild"
    assert_exact(engine, es, layout, ["executions"])


def test_a_seed_rolled_back_leaves_no_mark(synced, es, layout):
    engine = synced
    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
        with audit_paused(conn, ("workflows",), "test: rolled back"):
            conn.execute(sa.text("SELECT 1/0"))
    assert sync.sync_index(engine, es, layout, "workflows").mode == "incremental"
    state = watermarks.load_state(engine, layout.read_alias("workflows"))
    assert state.rebuilt_snapshot is not None
