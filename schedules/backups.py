"""Nightly backups, weekly restore tests, and an alert when either promise goes stale."""

# no `from __future__ import annotations`: Dagster reads the parameter annotations to inject resources
import json
from datetime import UTC, datetime

import dagster as dg

from jobs import backup_job, restore_test_job
from orchestrator_data.alerts import Alert
from orchestrator_data.backups.freshness import Freshness, restore_check_freshness, verified_freshness
from resources import AlertsResource, BackupStorageResource
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


def _cursor(text: str | None) -> dict:
    """The id alerted for, per promise. An older cursor was the bare id of the restore-checked promise."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"restore-checked": text}
    return value if isinstance(value, dict) else {}


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
    alerted = _cursor(context.cursor)
    said = []
    for freshness in promises:
        if freshness.ok:
            said.append(freshness.describe())
            continue
        if alerted.get(freshness.promise) == freshness.cursor:
            said.append(f"already alerted: {freshness.describe()}")
            continue
        alert = Alert(run_id=None, job="stale_backup_sensor", error=freshness.describe(), severity="warning",
                      runbook=alerts.runbook(f"stale {freshness.promise} backup"),
                      title=f"PostgreSQL {freshness.promise} backup is stale")
        delivery = alerts.send(alert)
        if not delivery.delivered:
            said.append(f"alert not delivered, will retry: {delivery.errors}")  # cursor unchanged
            continue
        alerted[freshness.promise] = freshness.cursor
        said.append(f"alerted ({', '.join(delivery.delivered)}): {freshness.describe()}")
    if alerted:
        context.update_cursor(json.dumps(alerted, sort_keys=True))
    return dg.SkipReason("; ".join(said))
