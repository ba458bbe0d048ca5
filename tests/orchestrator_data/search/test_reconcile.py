"""Reconciliation finds what differs between PostgreSQL and an index, and repair restores exactly that."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import indices, reconcile, sources, sync

pytestmark = pytest.mark.integration


@pytest.fixture
def synced(engine, es, layout):
    seed(engine, "testing", SeedPlan(executions=250))
    with engine.begin() as conn:  # the seed writes no audit rows: make some
        conn.execute(sa.text("UPDATE executions SET status = 'cancelled' WHERE id IN (SELECT DISTINCT ON "
                             "(organization_id) id FROM executions)"))
    indices.init_indices(es, layout)
    sync.sync(engine, es, layout)
    return engine


@pytest.mark.parametrize("name", sources.SYNCED)
def test_an_index_in_step_with_postgres_reconciles(synced, es, layout, name):
    result = reconcile.reconcile(synced, es, layout, name)
    assert result.ok, result.as_dict()
    assert result.documents == result.postgres_rows > 0 and result.organizations >= 2 and result.sampled > 0


def test_a_removed_and_a_tampered_document_are_found_and_repaired(synced, es, layout):
    engine = synced
    with engine.connect() as conn:
        org, removed, tampered = conn.execute(sa.text(
            "SELECT organization_id, (array_agg(id ORDER BY md5(id::text)))[1], (array_agg(id ORDER BY md5(id::text)))[2] "
            "FROM executions GROUP BY organization_id ORDER BY count(*) DESC LIMIT 1")).one()
    alias = layout.read_alias("executions")
    holder = es.search(index=alias, query={"ids": {"values": [str(removed), str(tampered)]}})["hits"]["hits"]
    where = {h["_id"]: h["_index"] for h in holder}
    es.delete(index=where[str(removed)], id=str(removed), refresh=True)
    # a document changed behind the sync's back, with a version above its row's so the sync keeps it
    es.index(index=where[str(tampered)], id=str(tampered), version=2**40, version_type="external",
             document={"organization_id": str(org), "id": str(tampered), "status": "bogus"}, refresh=True)

    found = reconcile.reconcile(engine, es, layout, "executions", sample=10_000)
    assert found.count_differences == {str(org): (found.count_differences[str(org)][0],
                                                  found.count_differences[str(org)][0] - 1)}
    assert f"{removed}: missing from the index" in found.sample_differences
    assert any(d.startswith(f"{tampered}:") for d in found.sample_differences)

    result, report = reconcile.repair(engine, es, layout, "executions")
    assert report.documents_written >= 1  # the removed one is back
    again = reconcile.reconcile(engine, es, layout, "executions", sample=10_000)
    assert not again.count_differences and f"{removed}: missing from the index" not in again.sample_differences
    # the tampered one carries a version above its row's: repair says so instead of regressing it
    assert any(d.startswith(f"{tampered}:") for d in again.sample_differences)
    assert report.stale_skipped == 1
