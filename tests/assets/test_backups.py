"""postgres_backup, postgres_restore_check and the freshness check, materialized on a fresh seeded database."""

from __future__ import annotations

import base64
import json

import dagster as dg
import pytest

from assets.backups import (
    check_postgres_backup_freshness,
    check_postgres_restore_check_freshness,
    postgres_backup,
    postgres_restore_check,
)
from assets.postgres import postgres_schema
from assets.seed import seed_data
from orchestrator_data import backups
from orchestrator_data.backups.keys import rotate_key
from resources import BackupStorageResource, DeploymentResource, PostgresResource
from tests.databases import HEAD, fresh_database

pytestmark = pytest.mark.integration

KEY_B64 = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="  # 32 bytes, test-only


def _check_name(evaluation) -> str:
    """`<asset>:<check>`: both assets have a check named freshness."""
    return f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"


@pytest.fixture
def seeded(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "backups"))
    with fresh_database(stack, prefix="asset_backup") as url:
        resources = {"postgres": PostgresResource(database_url=url), "backup_storage": BackupStorageResource(),
                     "deployment": DeploymentResource()}
        config = dg.RunConfig(ops={"seed_data": {"config": {"scale": 200, "environment": "testing"}}})
        assert dg.materialize([postgres_schema, seed_data], resources=resources, run_config=config).success
        yield resources, tmp_path / "backups"


def test_backup_then_restore_check_then_fresh(seeded, monkeypatch, tmp_path):
    resources, backup_dir = seeded
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY", KEY_B64)
    # a rotated ring: the backup is written with its newest key, not BACKUP_ENCRYPTION_KEY's
    ring_file = tmp_path / "keys" / "ring.json"
    ring_file.parent.mkdir()
    rotated = rotate_key(ring_file, base64.b64decode(KEY_B64), backup_dir)
    monkeypatch.setenv("BACKUP_KEYRING_FILE", str(ring_file))
    result = dg.materialize([postgres_backup, postgres_restore_check, check_postgres_backup_freshness,
                             check_postgres_restore_check_freshness], resources=resources)
    assert result.success
    [made] = result.asset_materializations_for_node("postgres_backup")
    meta = made.metadata
    entry = backups.get_backup(backup_dir, "latest")
    assert meta["backup_id"].value == entry.id and meta["sha256"].value == entry.sha256
    assert meta["size_bytes"].value == entry.size_bytes > 0 and meta["encrypted"].value is True
    assert meta["migration_head"].value == HEAD and meta["server_version"].value
    tables = {r.data["table"]: r.data for r in meta["tables"].value.records}
    assert tables["executions"]["rows"] == 200 and len(tables["executions"]["checksum"]) == 16
    assert meta["dagster/row_count"].value == sum(t["rows"] for t in tables.values())
    assert meta["encryption_key_id"].value == rotated.key.id
    for material in (base64.b64decode(KEY_B64), rotated.key.material):
        for form in (base64.b64encode(material).decode(), material.hex()):
            assert form not in json.dumps({k: str(v.value) for k, v in meta.items()})
            assert not any(form in str(event) for event in result.all_events)

    [checked] = result.asset_materializations_for_node("postgres_restore_check")
    assert checked.metadata["ok"].value is True and checked.metadata["difference_count"].value == 0
    assert checked.metadata["rto_seconds"].value > 0 and checked.metadata["backup_id"].value == entry.id
    checks = {_check_name(c): c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {"postgres_backup:freshness", "postgres_restore_check:freshness"}
    assert all(c.passed and c.metadata["newest_id"].value == entry.id for c in checks.values())
    assert checks["postgres_backup:freshness"].metadata["max_age_hours"].value == 26
    assert checks["postgres_restore_check:freshness"].metadata["max_age_hours"].value == 8 * 24


def test_freshness_of_each_promise_and_restore_check_lists_differences(seeded, monkeypatch):
    resources, backup_dir = seeded
    assert dg.materialize([postgres_backup], resources=resources).success
    entry = backups.get_backup(backup_dir, "latest")
    # written and read back: verified at once, but not restore-checked yet
    assert entry.verified_ok is True and entry.restore_check_ok is None
    check = dg.materialize([postgres_backup, postgres_restore_check, check_postgres_backup_freshness,
                            check_postgres_restore_check_freshness], resources=resources,
                           selection=dg.AssetSelection.checks(check_postgres_backup_freshness,
                                                              check_postgres_restore_check_freshness))
    checks = {_check_name(c): c for c in check.get_asset_check_evaluations()}
    assert checks["postgres_backup:freshness"].passed
    assert checks["postgres_backup:freshness"].metadata["newest_id"].value == entry.id
    assert not checks["postgres_restore_check:freshness"].passed
    assert checks["postgres_restore_check:freshness"].metadata["newest_id"].value == "none"
    # one line: what is wrong, then what repairs it; the runbook section as a link
    assert checks["postgres_restore_check:freshness"].description == (
        "no restore-checked backup; repair: orchestrator-data backup restore-check latest, and turn "
        "weekly_postgres_restore_check_schedule on")
    assert checks["postgres_restore_check:freshness"].metadata["runbook"].value == \
        "docs/runbook.md#postgres_restore_check-freshness"
    assert checks["postgres_backup:freshness"].description.startswith(f"newest verified backup {entry.id} is ")
    assert "repair" not in checks["postgres_backup:freshness"].description

    # the manifest now disagrees with what was dumped: the restore check must say where
    manifest_path = entry.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tables"]["executions"]["rows"] += 1
    manifest_path.write_text(json.dumps(manifest))
    failed = dg.materialize([postgres_restore_check], resources=resources, raise_on_error=False)
    assert not failed.success
    description = failed.failure_data_for_node("postgres_restore_check").user_failure_data.description
    assert entry.id in description and "executions" in description
