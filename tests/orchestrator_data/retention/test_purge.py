"""The purge on the real PostgreSQL: exactly what the policies say, in bounded batches, audited so the
search sync learns of it; audit rows the sync has not read are kept; dry runs and refusals change nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestrator_data.retention.policies import load_policies
from orchestrator_data.retention.purge import RetentionRefused, purge

from tests.retention_data import KEEP_ALL, OLD_EXECUTIONS, ids, policy_dir, scalar

pytestmark = pytest.mark.integration


def _policies(tmp_path, **override):
    return load_policies(policy_dir(tmp_path, **(KEEP_ALL | override)))


def test_executions_older_than_the_policy_go_in_batches_and_leave_delete_audit_rows(seeded, tmp_path):
    engine = seeded.engine
    policies = _policies(tmp_path, executions={"delete_after": "90d", "batch_size": 50})

    dry = purge(engine, policies, dry_run=True)
    [executions] = [t for t in dry.tables if t.table == "executions"]
    assert (executions.action, executions.eligible, executions.purged) == ("would purge", OLD_EXECUTIONS, 0)
    assert scalar(engine, "SELECT count(*) FROM executions") == seeded.executions

    report = purge(engine, policies)
    [executions] = [t for t in report.tables if t.table == "executions"]
    assert (executions.purged, executions.batches) == (OLD_EXECUTIONS, 3)  # 50 + 50 + 20
    assert report.rows_purged == OLD_EXECUTIONS
    assert {t.action for t in report.tables if t.table != "executions"} == {"kept (no policy)"}
    left = ids(engine, "SELECT id FROM executions")
    assert len(left) == seeded.executions - OLD_EXECUTIONS and not left & seeded.old_executions
    assert scalar(engine, "SELECT count(*) FROM executions WHERE created_at < now() - interval '90 days'") == 0
    deleted = ids(engine, "SELECT record_id FROM audit_logs WHERE action = 'DELETE' AND table_name = 'executions'")
    assert deleted == seeded.old_executions  # what the search sync reads to delete their documents

    again = purge(engine, policies)
    assert again.rows_purged == 0


def test_soft_deleted_rows_go_only_after_their_grace_period(seeded, tmp_path):
    engine = seeded.engine
    with engine.begin() as conn:
        live = [str(i) for i in conn.execute(sa.text(
            "SELECT id FROM workflows WHERE deleted_at IS NULL ORDER BY id LIMIT 3")).scalars()]
        conn.execute(sa.text("UPDATE workflows SET deleted_at = now() - interval '40 days' WHERE id = ANY(CAST(:ids AS uuid[]))"),
                     {"ids": live[:2]})
        conn.execute(sa.text("UPDATE workflows SET deleted_at = now() - interval '5 days' WHERE id = CAST(:id AS uuid)"),
                     {"id": live[2]})
    before = ids(engine, "SELECT id FROM workflows WHERE deleted_at < now() - interval '30 days'")
    assert set(live[:2]) <= before
    cascaded = ids(engine, "SELECT id FROM executions WHERE workflow_id = ANY(CAST(:ids AS uuid[]))", ids=list(before))

    report = purge(engine, _policies(tmp_path, workflows={"delete_after": "30d", "batch_size": 1}))
    [workflows] = [t for t in report.tables if t.table == "workflows"]
    assert workflows.purged == len(before) == workflows.batches
    remaining = ids(engine, "SELECT id FROM workflows")
    assert not remaining & before and live[2] in remaining
    assert not ids(engine, "SELECT id FROM executions") & cascaded
    assert cascaded <= ids(engine, "SELECT record_id FROM audit_logs WHERE action = 'DELETE' AND table_name = 'executions'")


def test_audit_rows_the_sync_has_not_read_are_kept(seeded, tmp_path):
    engine = seeded.engine
    with engine.begin() as conn:  # a second transaction's audit rows, above the first one's
        conn.execute(sa.text("UPDATE workflows SET description = 'later' WHERE id IN (SELECT id FROM workflows LIMIT 5)"))
    with engine.begin() as conn:
        first, later = conn.execute(sa.text("SELECT min(transaction_id), max(transaction_id) FROM audit_logs")).one()
        conn.execute(sa.text("UPDATE audit_logs SET occurred_at = now() - interval '400 days'"))
        conn.execute(sa.text("INSERT INTO search_sync_state (index_name, watermark, mapping_version) VALUES "
                             "('a-audit_logs', :high, 1), ('a-workflows', :low, 1)"), {"high": later + 10, "low": later})
    total = scalar(engine, "SELECT count(*) FROM audit_logs")
    below = scalar(engine, "SELECT count(*) FROM audit_logs WHERE transaction_id < :w", w=later)
    assert 0 < below < total and first < later

    policies = _policies(tmp_path, audit_logs={"delete_after": "365d", "batch_size": 7})
    report = purge(engine, policies)
    [audit] = [t for t in report.tables if t.table == "audit_logs"]
    assert (audit.eligible, audit.purged, audit.kept_for_sync) == (below, below, total - below)
    assert audit.batches == -(-below // 7)
    assert scalar(engine, "SELECT min(transaction_id) FROM audit_logs") == later  # the lowest watermark's rows stay

    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM search_sync_state"))
    assert purge(engine, policies).rows_purged == total - below  # nothing unread once no sync has a watermark


def test_the_audit_purge_function_is_narrow(engine):
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="younger than one day"):
        conn.execute(sa.text("SELECT * FROM retention_purge_audit_logs(now() - interval '1 hour', 10)"))
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="max_rows"):
        conn.execute(sa.text("SELECT * FROM retention_purge_audit_logs(now() - interval '400 days', 0)"))
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="permission denied"):
        conn.execute(sa.text("SET ROLE orchestrator_app"))
        conn.execute(sa.text("SELECT * FROM retention_purge_audit_logs(now() - interval '400 days', 10)"))


def test_production_without_confirmation_is_refused_and_nothing_changes(seeded, tmp_path):
    engine = seeded.engine
    policies = _policies(tmp_path, executions={"delete_after": "90d"})
    with pytest.raises(RetentionRefused, match="confirm"):
        purge(engine, policies, production=True)
    assert scalar(engine, "SELECT count(*) FROM executions") == seeded.executions
    assert purge(engine, policies, production=True, dry_run=True).tables[2].eligible == OLD_EXECUTIONS
    assert purge(engine, policies, production=True, confirm=True).rows_purged == OLD_EXECUTIONS


def test_the_security_check_reports_the_audit_purge_function_opened_to_public(engine):
    from orchestrator_data.postgres.security import check_security

    assert check_security(engine).ok
    with engine.begin() as conn:
        conn.execute(sa.text("GRANT EXECUTE ON FUNCTION retention_purge_audit_logs(timestamptz, integer) TO PUBLIC"))
    problems = check_security(engine).problems
    assert problems == ["function retention_purge_audit_logs must not be executable by PUBLIC or orchestrator_app"]
