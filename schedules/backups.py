"""Nightly backups, weekly restore tests, and an alert when either promise goes stale."""

# no `from __future__ import annotations`: Dagster reads the parameter annotations to inject resources
from datetime import UTC, datetime

import dagster as dg

from jobs import backup_job, restore_test_job
from orchestrator_data.backups.freshness import Freshness, restore_check_freshness, verified_freshness
from resources import AlertsResource, BackupStorageResource
from schedules._stale import alert_stale
from schedules._status import schedule_status, sensor_status

nightly_backup_schedule = dg.ScheduleDefinition(
    name="nightly_backup_schedule",
    job=backup_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    description="Back PostgreSQL up every night at 02:00 UTC.",
    default_status=schedule_status(),
)

# Sunday 04:00, after that night's backup: proves the backups restore, at least weekly.
weekly_restore_test_schedule = dg.ScheduleDefinition(
    name="weekly_restore_test_schedule",
    job=restore_test_job,
    cron_schedule="0 4 * * 0",
    execution_timezone="UTC",
    description="Restore the newest backup into a scratch database and compare it, every Sunday 04:00 UTC.",
    default_status=schedule_status(),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dg.sensor(
    name="stale_backup_sensor",
    minimum_interval_seconds=3600,
    default_status=sensor_status(),
    description="Alerts (audit log, Redis, webhook) when the newest verified backup is older than "
                "BACKUP_MAX_AGE_HOURS or the newest restore-checked one older than RESTORE_CHECK_MAX_AGE_DAYS "
                "(or there is none); once per stale backup and promise (the cursor keeps the ids). "
                "Runbook: docs/runbook.md#stale_backup_sensor",
)
def stale_backup_sensor(context: dg.SensorEvaluationContext, backup_storage: BackupStorageResource,
                        alerts: AlertsResource):
    now = utcnow()
    directory = backup_storage.directory()
    promises: list[Freshness] = [
        verified_freshness(directory, backup_storage.verified_max_age_hours(), now),
        restore_check_freshness(directory, backup_storage.restore_checked_max_age_hours(), now),
    ]
    return alert_stale(context, promises, alerts, "stale_backup_sensor",
                       lambda freshness: f"PostgreSQL {freshness.promise} backup is stale")
