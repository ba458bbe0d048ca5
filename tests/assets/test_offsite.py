"""offsite_copies and its freshness check, materialized against the session's S3 server (MinIO)."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.offsite import check_offsite_copies_freshness, offsite_copies
from orchestrator_data.backups import create_backup
from resources import BackupStorageResource

pytestmark = pytest.mark.integration


@pytest.fixture
def configured(migrated_url, offsite_env, monkeypatch, tmp_path):
    for name, value in {**offsite_env, "BACKUP_DIR": str(tmp_path / "backups"),
                        "RECOVERY_DIR": str(tmp_path / "recovery")}.items():
        monkeypatch.setenv(name, value)
    return tmp_path / "backups"


def test_offsite_copies_records_what_went_off_the_machine_and_is_fresh(configured, migrated_url, offsite_env):
    entry = create_backup(migrated_url, configured)
    resources = {"backup_storage": BackupStorageResource()}
    result = dg.materialize([offsite_copies, check_offsite_copies_freshness], resources=resources)
    assert result.success
    [made] = result.asset_materializations_for_node("offsite_copies")
    meta = made.metadata
    assert meta["objects_uploaded"].value == 2 and meta["dumps"].value == 1 and meta["verified"].value is True
    assert meta["bytes_uploaded"].value > entry.size_bytes  # the dump and its manifest
    assert 0 <= meta["newest_copy_age_s"].value < 600
    assert offsite_env["OFFSITE_BUCKET"] in meta["where"].value
    keys = [row.data["key"] for row in meta["objects"].value.records]
    assert keys == [f"dumps/{entry.id}/dump.pgc", f"dumps/{entry.id}/manifest.json"]
    [check] = result.get_asset_check_evaluations()
    assert check.passed
    serialized = str({k: v.value for k, v in meta.items()})
    assert offsite_env["OFFSITE_SECRET_ACCESS_KEY"] not in serialized

    again = dg.materialize([offsite_copies], resources=resources)
    [made] = again.asset_materializations_for_node("offsite_copies")
    assert made.metadata["objects_uploaded"].value == 0 and made.metadata["objects_skipped"].value == 2


def test_the_freshness_check_fails_on_an_empty_bucket_and_when_not_configured(configured, monkeypatch):
    with dg.build_resources({"backup_storage": BackupStorageResource()}) as built:
        empty = check_offsite_copies_freshness(backup_storage=built.backup_storage)
    assert empty.passed is False and "nothing in the bucket" in empty.description
    monkeypatch.setenv("OFFSITE_BUCKET", "")
    with dg.build_resources({"backup_storage": BackupStorageResource()}) as built:
        unset = check_offsite_copies_freshness(backup_storage=built.backup_storage)
    assert unset.passed is False and "OFFSITE_BUCKET is not set" in unset.description
    failed = dg.materialize([offsite_copies], resources={"backup_storage": BackupStorageResource()},
                            raise_on_error=False)
    assert not failed.success
