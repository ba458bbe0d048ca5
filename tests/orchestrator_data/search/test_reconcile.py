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
    # what a person reads: the missing one counted once (not again as a differing sample), the tampered one
    differs = reconcile.discrepancies(engine, es, layout, "executions", found)
    assert (differs.orphans, differs.misplaced, differs.missing, differs.sample_differing) == (0, 0, 1, 1)
    assert differs.describe() == (f"executions: 1 row(s) without a document, 1 of {found.sampled:,} sampled "
                                  f"document(s) differ from their row")

    result, report = reconcile.repair(engine, es, layout, "executions")
    assert report.documents_written >= 1  # the removed one is back
    again = reconcile.reconcile(engine, es, layout, "executions", sample=10_000)
    assert not again.count_differences and f"{removed}: missing from the index" not in again.sample_differences
    # the tampered one carries a version above its row's: repair says so instead of regressing it
    assert any(d.startswith(f"{tampered}:") for d in again.sample_differences)
    assert report.stale_skipped == 1


def test_discrepancies_tell_orphans_from_documents_under_another_organization(synced, es, layout):
    engine = synced
    with engine.connect() as conn:
        [row_id, organization] = conn.execute(sa.text(
            "SELECT id::text, organization_id::text FROM workflows WHERE deleted_at IS NULL ORDER BY id LIMIT 1")).one()
        other = conn.execute(sa.text("SELECT id::text FROM organizations WHERE id::text <> :org LIMIT 1"),
                             {"org": organization}).scalar_one()
    document = es.get(index=layout.read_alias("workflows"), id=row_id)["_source"]
    write = layout.write_alias("workflows")
    for n in range(3):  # orphans: documents no row stands behind
        es.index(index=write, id=f"00000000-0000-0000-0000-00000000000{n}", document=document)
    es.index(index=write, id=row_id, document=document | {"organization_id": other}, refresh=True)

    found = reconcile.reconcile(engine, es, layout, "workflows")
    differs = reconcile.discrepancies(engine, es, layout, "workflows", found)
    assert (differs.orphans, differs.misplaced, differs.missing) == (3, 1, 0)
    # the misplaced document is sampled too; it is counted once
    assert differs.sample_differing == 0 and found.sampled == found.postgres_rows
    assert differs.describe() == "workflows: 3 document(s) without a row, 1 under another organization than their row"
    assert reconcile.discrepancies(engine, es, layout, "marketplace",
                                   reconcile.reconcile(engine, es, layout, "marketplace")).describe() == \
        "marketplace: documents equal PostgreSQL's rows"
