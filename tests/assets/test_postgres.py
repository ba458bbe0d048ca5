"""The postgres_schema asset and its checks, materialized on a fresh database of the real server."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from assets.postgres import (
    POSTGRES_ASSET_CHECKS,
    POSTGRES_ASSETS,
    check_postgres_schema_drift,
    check_postgres_schema_security,
    postgres_schema,
)
from orchestrator_data import urls
from resources import PostgresResource
from tests.databases import HEAD, REVISIONS

pytestmark = pytest.mark.integration


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_postgres_schema_migrates_to_head_and_reports_revisions_and_tables(database):
    resources = {"postgres": PostgresResource(database_url=database)}
    result = dg.materialize([*POSTGRES_ASSETS, *POSTGRES_ASSET_CHECKS], resources=resources)
    assert result.success
    [materialization] = result.asset_materializations_for_node("postgres_schema")
    metadata = materialization.metadata
    assert metadata["head_revision"].value == HEAD and metadata["current_revision"].value == HEAD
    assert metadata["previous_revision"].value == "base"
    applied = metadata["applied_revisions"].value.records
    assert [r.data["revision"] for r in applied] == REVISIONS
    assert all(r.data["duration_ms"] >= 0 for r in applied)
    tables = {r.data["table"]: r.data for r in metadata["tables"].value.records}
    assert {"organizations", "executions", "audit_logs", "_migration_history"} <= set(tables)
    assert tables["_migration_history"]["rows"] == len(REVISIONS) and tables["executions"]["total_bytes"] > 0
    assert metadata["dagster/row_count"].value == sum(t["rows"] for t in tables.values())
    # what a DBA reads: one table (largest first, shares in percent), no loose per-table entries
    records = [r.data for r in metadata["tables"].value.records]
    assert [r["total_bytes"] for r in records] == sorted((r["total_bytes"] for r in records), reverse=True)
    assert abs(sum(r["share_pct"] for r in records) - 100) < 0.1 * len(records)
    assert all(0 < r["index_pct"] <= 100 for r in records)
    assert tables["executions"]["index_pct"] == round(100 * tables["executions"]["index_bytes"]
                                                      / tables["executions"]["total_bytes"], 1)
    assert sorted(metadata) == ["applied_count", "applied_revisions", "current_revision", "dagster/row_count",
                                "head_revision", "lock_wait_ms", "migration_ms", "previous_revision", "tables",
                                "total", "total_bytes"]
    assert _checks(result) == {"drift": True, "security": True}

    again = dg.materialize([postgres_schema], resources=resources)
    [second] = again.asset_materializations_for_node("postgres_schema")
    assert second.metadata["applied_count"].value == 0


def test_checks_fail_on_drift_and_loosened_security(database):
    resources = {"postgres": PostgresResource(database_url=database)}
    assert dg.materialize([postgres_schema], resources=resources).success
    with psycopg.connect(urls.libpq_url(database), autocommit=True) as conn:
        conn.execute("ALTER TABLE executions ADD COLUMN rogue text")
        conn.execute("ALTER TABLE users DISABLE ROW LEVEL SECURITY")
    result = dg.materialize(
        [postgres_schema, check_postgres_schema_drift, check_postgres_schema_security],
        resources=resources, selection=dg.AssetSelection.checks_for_assets(postgres_schema),
        raise_on_error=False,
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["drift"].passed
    assert "executions.rogue" in evaluations["drift"].metadata["differences"].value
    security = evaluations["security"]
    assert not security.passed
    assert "users: row-level security is not enabled" in security.metadata["problems"].value
    # one line each: what differs, how many, what repairs it; the runbook as a link
    drift = evaluations["drift"].description
    assert drift.startswith("1 difference(s) from the models: ") and "executions.rogue" in drift
    assert drift.endswith("; repair: a new revision, or revert the manual change") and "\n" not in drift
    problems = security.metadata["problem_count"].value
    assert security.description.startswith(f"{problems} security problem(s): ") and "users" in security.description
    assert security.description.endswith("; repair: orchestrator-data migrate up, then find who changed it")
    assert evaluations["drift"].metadata["runbook"].value == "docs/runbook.md#postgres_schema-drift"
    # and the asset itself refuses to report success on a database whose security was loosened
    failed = dg.materialize([postgres_schema], resources=resources, raise_on_error=False)
    assert not failed.success
    description = failed.failure_data_for_node("postgres_schema").user_failure_data.description
    assert "security check failed" in description
