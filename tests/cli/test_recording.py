"""Work done from the CLI shows in Dagster: the matching asset's materialization, with the asset's own
metadata, on the instance `orchestrator-data ui` uses; an unreachable Dagster storage costs one line."""

from __future__ import annotations

import base64
import os

import dagster as dg
import pytest

from assets.backups import postgres_backup
from orchestrator_data.cli.dagster_env import dagster_home
from orchestrator_data.settings import load_settings
from orchestrator_data.stack.common import free_port
from resources import BackupStorageResource, PostgresResource

pytestmark = pytest.mark.integration


def _dagster(stack) -> dict:
    """With DATABASE_URL pointing elsewhere, Dagster's storage is named explicitly (the stack's); recording
    is on (the rest of the suite turns it off to save the time)."""
    return {"DAGSTER_PG_URL": stack.endpoints().dagster_pg_url, "ORCHESTRATOR_DATA_RECORD": "1"}


def _latest(asset: str) -> dg.AssetMaterialization | None:
    with dg.DagsterInstance.from_config(str(dagster_home(load_settings()))) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return event.asset_materialization if event else None


def _evaluation_of_latest(asset: str, check: str):
    """The check's latest evaluation, asserted to come after the asset's latest materialization (so the UI
    shows it as the check of that materialization, not an old result or "not evaluated")."""
    with dg.DagsterInstance.from_config(str(dagster_home(load_settings()))) as instance:
        materialized = instance.get_latest_materialization_event(dg.AssetKey(asset))
        record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(dg.AssetKey(asset), check))
    assert record is not None and record.evaluation is not None, f"{asset}:{check} not evaluated"
    assert record.event.timestamp >= materialized.timestamp
    return record.evaluation


def test_backup_create_records_the_assets_materialization(cli, stack, migrated_url, tmp_path):
    env = {"DATABASE_URL": migrated_url, "BACKUP_DIR": str(tmp_path / "cli"), **_dagster(stack)}
    created = cli("backup", "create", env=env)
    assert created.returncode == 0, created.stderr
    assert "recorded in Dagster: postgres_backup; checks: postgres_backup:freshness passed" in created.stderr
    recorded = _latest("postgres_backup")
    assert recorded is not None and recorded.tags["orchestrator-data/source"] == "cli"
    # the asset's check, evaluated with the materialization: the new backup is fresh
    freshness = _evaluation_of_latest("postgres_backup", "freshness")
    assert freshness.passed and freshness.metadata["newest_id"].value == recorded.metadata["backup_id"].value
    backup_id = recorded.metadata["backup_id"].value
    assert backup_id in created.stdout

    # the asset itself, on a backup of the same database: the same metadata keys
    result = dg.materialize([postgres_backup], resources={
        "postgres": PostgresResource(database_url=migrated_url),
        "backup_storage": BackupStorageResource(backup_dir=str(tmp_path / "asset"))})
    [materialized] = result.asset_materializations_for_node("postgres_backup")
    assert set(recorded.metadata) == set(materialized.metadata)
    assert recorded.metadata["tables"].value.records == materialized.metadata["tables"].value.records

    checked = cli("backup", "restore-check", backup_id, env=env)
    assert checked.returncode == 0, checked.stderr
    assert _latest("postgres_restore_check").metadata["backup_id"].value == backup_id
    restored = _evaluation_of_latest("postgres_restore_check", "freshness")
    assert restored.passed and restored.metadata["newest_id"].value == backup_id


def test_backup_prune_records_what_it_pruned(cli, stack, tmp_path):
    from datetime import UTC, datetime, timedelta

    from tests.orchestrator_data.backups.test_retention import write_backup

    now = datetime.now(UTC)
    kept, old = (write_backup(tmp_path / "b", now - timedelta(days=d)) for d in (1, 30))
    env = {"BACKUP_DIR": str(tmp_path / "b"), "RECOVERY_WINDOW_DAYS": "7", "BACKUP_KEEP_LAST": "0", **_dagster(stack)}
    dry = cli("backup", "prune", "--dry-run", env=env)
    assert dry.returncode == 0 and "recorded in Dagster" not in dry.stderr  # a dry run records nothing
    pruned = cli("backup", "prune", env=env)
    assert pruned.returncode == 0 and "recorded in Dagster: postgres_backup_prune" in pruned.stderr, pruned.stderr
    assert f"deleted {old}" in pruned.stdout and f"oldest kept {kept}" in pruned.stdout
    recorded = _latest("postgres_backup_prune").metadata
    assert recorded["pruned_count"].value == 1 and recorded["oldest_kept"].value == kept
    assert recorded["window_days"].value == 7 and recorded["freed_bytes"].value == 1


def test_migrate_and_seed_record_their_assets(cli, stack, database):
    env = {"DATABASE_URL": database, **_dagster(stack)}
    migrated = cli("migrate", "up", env=env)
    assert migrated.returncode == 0 and "recorded in Dagster: postgres_schema" in migrated.stderr
    assert "postgres_schema:drift passed" in migrated.stderr and "postgres_schema:security passed" in migrated.stderr
    schema = _latest("postgres_schema").metadata
    assert schema["current_revision"].value == schema["head_revision"].value
    assert {"executions", "_migration_history"} <= {r.data["table"] for r in schema["tables"].value.records}
    for check in ("drift", "security"):  # blocking checks, evaluated against the migrated schema
        evaluation = _evaluation_of_latest("postgres_schema", check)
        assert evaluation.passed and evaluation.blocking, check
    seeded = cli("seed", "run", "--scale", "300", env=env)
    assert seeded.returncode == 0, seeded.stderr
    seed = _latest("seed_data").metadata
    assert seed["executions_planned"].value == 300 and seed["rows_per_s"].value > 0


def test_an_unreachable_dagster_storage_costs_one_line_not_the_command(cli, stack, migrated_url, tmp_path):
    env = {"DATABASE_URL": migrated_url, "BACKUP_DIR": str(tmp_path),
           "DAGSTER_PG_URL": f"postgresql://dagster:Secret9x@127.0.0.1:{free_port()}/dagster",
           "DAGSTER_HOME": str(tmp_path / "home"), "ORCHESTRATOR_DATA_RECORD": "1"}
    created = cli("backup", "create", env=env)
    assert created.returncode == 0, created.stderr
    notes = [line for line in created.stderr.splitlines() if "Dagster" in line]
    assert len(notes) == 1 and notes[0].startswith("not recorded in Dagster") and "the work itself is done" in notes[0]
    assert "Secret9x" not in created.stdout + created.stderr
    assert len([p for p in os.listdir(tmp_path) if not p.startswith(".")]) >= 1  # the backup is there


def test_recording_can_be_turned_off(cli, stack, migrated_url, tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    env = {"DATABASE_URL": migrated_url, "BACKUP_DIR": str(tmp_path), "BACKUP_ENCRYPTION_KEY": key,
           **_dagster(stack), "ORCHESTRATOR_DATA_RECORD": "0"}
    before = _latest("postgres_backup")
    created = cli("backup", "create", env=env)
    assert created.returncode == 0 and "Dagster" not in created.stderr
    after = _latest("postgres_backup")
    assert (before and before.metadata["backup_id"].value) == (after and after.metadata["backup_id"].value)


def test_search_sync_records_the_documents_with_their_reconciliation(cli, stack, migrated_url, prefix):
    env = {"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": prefix, **_dagster(stack)}
    initialized = cli("search", "init", env=env)
    assert initialized.returncode == 0 and "recorded in Dagster: " in initialized.stderr, initialized.stderr
    synced = cli("search", "sync", "--index", "workflows", env=env)
    assert synced.returncode == 0, synced.stderr
    assert "recorded in Dagster: search_workflows_documents" in synced.stderr
    assert "search_workflows_documents:reconciliation passed" in synced.stderr
    documents = _latest("search_workflows_documents")
    assert documents.tags["orchestrator-data/source"] == "cli" and documents.metadata["lag_rows"].value == 0
    reconciliation = _evaluation_of_latest("search_workflows_documents", "reconciliation")
    assert reconciliation.passed
    assert reconciliation.metadata["documents"].value == reconciliation.metadata["postgres_rows"].value
