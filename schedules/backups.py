"""Nightly backups, weekly restore checks, daily pruning under the recovery window, and an alert when
either promise goes stale."""

from datetime import UTC, datetime

import dagster as dg

from assets._runbook import runbook_metadata
from jobs import postgres_backup_job, postgres_backup_prune_job, postgres_restore_check_job
from orchestrator_data.backups.freshness import Freshness, restore_check_freshness, verified_freshness
from resources import BackupStorageResource
from schedules._stale import stale_copy_sensor
from schedules._status import schedule_status

nightly_postgres_backup_schedule = dg.ScheduleDefinition(
    name="nightly_postgres_backup_schedule",
    job=postgres_backup_job,
    metadata=runbook_metadata("postgres_backup_job"),
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    description="Back PostgreSQL up every night at 02:00 UTC.",
    default_status=schedule_status(),
)

# Sunday 04:00, after that night's backup: proves the backups restore, at least weekly.
weekly_postgres_restore_check_schedule = dg.ScheduleDefinition(
    name="weekly_postgres_restore_check_schedule",
    job=postgres_restore_check_job,
    metadata=runbook_metadata("postgres_restore_check_job"),
    cron_schedule="0 4 * * 0",
    execution_timezone="UTC",
    description="Restore the newest backup into a scratch database and compare it, every Sunday 04:00 UTC.",
    default_status=schedule_status(),
)


# 05:30, after the night's backup (02:00) and the Sunday restore check (04:00): the backup that keeps the
# window covered is verified by then, and a dump older than the window (an erased person in it) goes
# within a day of leaving it
daily_postgres_backup_prune_schedule = dg.ScheduleDefinition(
    name="daily_postgres_backup_prune_schedule",
    job=postgres_backup_prune_job,
    metadata=runbook_metadata("postgres_backup_prune_job"),
    cron_schedule="30 5 * * *",
    execution_timezone="UTC",
    description="Prune the logical dumps, base backups and WAL the recovery window and the keep-N rules no longer "
                "need, daily at 05:30 UTC.",
    default_status=schedule_status(),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _backup_promises(resources: dict) -> list[Freshness]:
    now = utcnow()
    storage: BackupStorageResource = resources["backup_storage"]
    directory = storage.directory()
    return [verified_freshness(directory, storage.verified_max_age_hours(), now),
            restore_check_freshness(directory, storage.restore_checked_max_age_hours(), now)]


stale_backup_sensor = stale_copy_sensor(
    "stale_backup_sensor",
    "Alerts (audit log, Redis, webhook) when the newest verified backup is older than BACKUP_MAX_AGE_HOURS or "
    "the newest restore-checked one older than RESTORE_CHECK_MAX_AGE_DAYS (or there is none); once per stale "
    "backup and promise (the cursor keeps the ids).",
    {"backup_storage"}, _backup_promises,
    lambda freshness: f"PostgreSQL {freshness.promise} backup is stale")
