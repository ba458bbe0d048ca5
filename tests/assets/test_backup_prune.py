"""postgres_backup_prune, its job and its daily schedule, on synthetic backups (no server needed): the
window and keep-N rule, and the metadata that says what went."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.backups import postgres_backup_prune
from orchestrator_data.backups import list_backups
from resources import BackupStorageResource
from tests.orchestrator_data.backups.test_retention import write_backup


def _backups(root, ages_days: list[float], verified_age: float | None = None) -> list[str]:
    now = datetime.now(UTC)
    return [write_backup(root, now - timedelta(days=age), verified=True if age == verified_age else None)
            for age in ages_days]


def test_the_asset_prunes_outside_the_window_and_records_what_went(tmp_path):
    ids = _backups(tmp_path, [0.5, 3, 9, 12, 30], verified_age=30)
    storage = BackupStorageResource(backup_dir=str(tmp_path), recovery_window_days=7, keep_last=3)
    dry = dg.materialize([postgres_backup_prune], resources={"backup_storage": storage},
                         run_config=dg.RunConfig(ops={"postgres_backup_prune": {"config": {"dry_run": True}}}))
    assert dry.success and len(list_backups(tmp_path)) == 5
    assert dry.asset_materializations_for_node("postgres_backup_prune")[0].metadata["pruned_count"].value == 1

    result = dg.materialize([postgres_backup_prune], resources={"backup_storage": storage})
    assert result.success
    # inside the window: 0.5 and 3 days; the newest 3 add the 9-day one; the newest verified keeps the
    # 30-day one; only the 12-day one goes
    assert sorted(e.id for e in list_backups(tmp_path)) == sorted([ids[0], ids[1], ids[2], ids[4]])
    [made] = result.asset_materializations_for_node("postgres_backup_prune")
    meta = {k: v.value for k, v in made.metadata.items()}
    assert meta["pruned_count"] == 1 and meta["freed_bytes"] == 1 and meta["kept_count"] == 4
    assert meta["oldest_kept"] == ids[4] and meta["dry_run"] is False
    assert meta["window_days"] == 7 and meta["keep_last"] == 3
    rows = {r.data["backup_id"]: r.data for r in meta["backups"].records}
    assert rows[ids[3]]["action"] == "pruned" and rows[ids[4]]["why"] == "newest verified"
    assert rows[ids[2]]["why"] == "newest 3 of 3"


def test_the_job_and_its_daily_schedule(tmp_path, monkeypatch):
    from definitions import defs

    ids = _backups(tmp_path, [1, 20, 40])
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path))
    monkeypatch.setenv("RECOVERY_WINDOW_DAYS", "7")
    monkeypatch.setenv("BACKUP_KEEP_LAST", "1")
    schedule = defs.resolve_schedule_def("daily_postgres_backup_prune_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 5 * * *", "UTC")
    [request] = schedule.evaluate_tick(dg.build_schedule_context()).run_requests
    assert request.job_name in (None, "postgres_backup_prune_job")
    job = defs.resolve_job_def(schedule.job_name)
    assert job.name == "postgres_backup_prune_job"
    # the settings through the resource's defaults: a 7-day window, the newest one
    result = job.execute_in_process(resources={"backup_storage": BackupStorageResource()},
                                    run_config=request.run_config or None)
    assert result.success
    assert [e.id for e in list_backups(tmp_path)] == [ids[0]]
    [made] = result.asset_materializations_for_node("postgres_backup_prune")
    assert made.metadata["pruned_count"].value == 2 and made.metadata["oldest_kept"].value == ids[0]
