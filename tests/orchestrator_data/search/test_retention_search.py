"""Retention reaches search: purged executions leave their index through the next sync (their DELETE
audit rows), purged audit rows leave the audit index at once, and only those."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestrator_data.retention.policies import load_policies
from orchestrator_data.retention.purge import purge
from orchestrator_data.retention.search import audit_document_deleter
from orchestrator_data.search import indices, sync

from tests.retention_data import KEEP_ALL, OLD_EXECUTIONS, ids, policy_dir, seeded_for_retention

pytestmark = pytest.mark.integration


def _document_ids(es, layout, name: str) -> set[str]:
    alias = layout.read_alias(name)
    es.indices.refresh(index=alias)
    found = es.search(index=alias, size=10_000, query={"match_all": {}}, source=False)
    return {hit["_id"] for hit in found["hits"]["hits"]}


def test_purged_rows_leave_the_search_indices(engine, es, layout, tmp_path):
    seeded = seeded_for_retention(engine)
    indices.init_indices(es, layout)
    sync.sync(engine, es, layout)
    assert seeded.old_executions <= _document_ids(es, layout, "executions")
    with engine.begin() as conn:  # every audit row so far is old, and the sync has read it
        conn.execute(sa.text("UPDATE audit_logs SET occurred_at = now() - interval '400 days'"))
    synced_audit = ids(engine, "SELECT id FROM audit_logs")
    assert synced_audit == _document_ids(es, layout, "audit_logs")

    policies = load_policies(policy_dir(tmp_path, **(KEEP_ALL | {
        "executions": {"delete_after": "90d", "batch_size": 50},
        "audit_logs": {"delete_after": "365d", "batch_size": 100}})))
    report = purge(engine, policies, delete_documents=audit_document_deleter(es, layout))
    executions, audit = report.tables[2], report.tables[3]
    assert executions.purged == OLD_EXECUTIONS
    assert audit.purged == len(synced_audit) == audit.search_documents_deleted and audit.kept_for_sync == 0
    assert not _document_ids(es, layout, "audit_logs") & synced_audit  # gone at once, not waiting for a sync

    sync.sync(engine, es, layout)
    documents = _document_ids(es, layout, "executions")
    assert not documents & seeded.old_executions
    assert documents == ids(engine, "SELECT id FROM executions")
    # the purge's own DELETE rows are recent: kept, and synced as usual
    assert _document_ids(es, layout, "audit_logs") == ids(engine, "SELECT id FROM audit_logs")
