"""Nightly backups, weekly restore tests, and an alert when the newest verified backup gets old."""

# no `from __future__ import annotations`: Dagster reads the parameter annotations to inject resources
from datetime import datetime, timezone

import dagster as dg

from assets.backups import backup_age_hours, backup_settings
from jobs import backup_job, restore_test_job
from orchestrator_data import backups
from orchestrator_data.alerts import Alert
from resources import PostgresResource, RedisResource
from schedules._status import schedule_status, sensor_status
from schedules.alerts import deliver

NO_VERIFIED = "none"  # the cursor when there is no verified backup at all

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


@dg.sensor(
    name="stale_backup_sensor",
    minimum_interval_seconds=3600,
    default_status=sensor_status(),
    description="Alerts (audit log, Redis, webhook) when the newest verified backup is older than "
                "BACKUP_MAX_AGE_HOURS, or there is none; once per stale backup (the cursor keeps its id).",
)
def stale_backup_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource, redis: RedisResource):
    backup_dir, _, max_age = backup_settings()
    entry = backups.latest_verified(backup_dir)
    age = backup_age_hours(entry, datetime.now(timezone.utc))
    if age is not None and age <= max_age:
        return dg.SkipReason(f"newest verified backup {entry.id} is {age:.1f} h old (limit {max_age:g} h)")
    stale_id = entry.id if entry else NO_VERIFIED
    if context.cursor == stale_id:
        return dg.SkipReason(f"already alerted for {stale_id}")
    error = (f"newest verified backup {entry.id} is {age:.1f} h old (limit {max_age:g} h)" if entry
             else "no backup has passed a restore check")
    alert = Alert(run_id=None, job="stale_backup_sensor", error=error, severity="warning",
                  title="PostgreSQL backup is stale")
    delivery = deliver(alert, postgres, redis)
    if not delivery.delivered:
        return dg.SkipReason(f"alert not delivered, will retry: {delivery.errors}")  # cursor unchanged
    context.update_cursor(stale_id)
    return dg.SkipReason(f"alerted for {stale_id} ({', '.join(delivery.delivered)})")
