"""Schedules and sensors. Each one's default status is chosen on purpose (see docs/architecture.md and
schedules/_status.py: the backup schedules and alert sensors run by default only in production)."""

import dagster as dg

from assets._runbook import runbook_metadata
from jobs import health_job, retention_job, search_lifecycle_job, search_sync_job
from schedules._status import schedule_status
from schedules.alerts import run_failure_alert_sensor
from schedules.backups import (daily_postgres_backup_prune_schedule, nightly_postgres_backup_schedule, stale_backup_sensor,
                               weekly_postgres_restore_check_schedule)
from schedules.metrics import system_metrics_schedule
from schedules.offsite import offsite_push_schedule
from schedules.recovery import nightly_base_backup_schedule, wal_archive_sensor, weekly_recovery_check_schedule
from schedules.replication import replication_schedule, replication_sensor
from schedules.search import daily_search_snapshot_schedule, stale_search_snapshot_sensor

# Off by default outside production: a developer's laptop should not poll on its own.
health_schedule = dg.ScheduleDefinition(
    name="health_schedule",
    job=health_job,
    metadata=runbook_metadata("health_job"),
    cron_schedule="*/15 * * * *",
    description="Check every server of the data layer every 15 minutes.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

# Every 5 minutes: search results stay within minutes of PostgreSQL. RUNNING by default in production only.
search_sync_schedule = dg.ScheduleDefinition(
    name="search_sync_schedule",
    job=search_sync_job,
    metadata=runbook_metadata("search_sync_job"),
    cron_schedule="*/5 * * * *",
    description="Sync the search indices from PostgreSQL every 5 minutes (incremental), then reconcile them.",
    default_status=schedule_status(),
)

# Hourly, at minute 17 (off the backups' and the sync's round minutes): daily rollovers land within the hour.
search_lifecycle_schedule = dg.ScheduleDefinition(
    name="search_lifecycle_schedule",
    job=search_lifecycle_job,
    metadata=runbook_metadata("search_lifecycle_job"),
    cron_schedule="17 * * * *",
    execution_timezone="UTC",
    description="Roll the search indices over and apply retention by their lifecycle policies, every hour.",
    default_status=schedule_status(),
)

# Daily at 03:41 UTC (off the backups' and the sync's round minutes). RUNNING by default in production
# only. Its run config carries confirm: true: turning this schedule on is the standing confirmation for
# production; a run launched by hand still has to say confirm: true itself.
retention_schedule = dg.ScheduleDefinition(
    name="retention_schedule",
    job=retention_job,
    metadata=runbook_metadata("retention_job"),
    cron_schedule="41 3 * * *",
    execution_timezone="UTC",
    run_config={"ops": {"retention_purge": {"config": {"dry_run": False, "confirm": True}}}},
    description="Purge rows past their retention policy, once a day.",
    default_status=schedule_status(),
)

SCHEDULES = [health_schedule, nightly_postgres_backup_schedule, weekly_postgres_restore_check_schedule,
             daily_postgres_backup_prune_schedule, search_sync_schedule,
             search_lifecycle_schedule, daily_search_snapshot_schedule, system_metrics_schedule, retention_schedule,
             nightly_base_backup_schedule, weekly_recovery_check_schedule, offsite_push_schedule,
             replication_schedule]
SENSORS: list = [run_failure_alert_sensor, stale_backup_sensor, stale_search_snapshot_sensor, wal_archive_sensor,
                 replication_sensor]

__all__ = ["SCHEDULES", "SENSORS", "daily_postgres_backup_prune_schedule", "daily_search_snapshot_schedule", "health_schedule", "nightly_postgres_backup_schedule",
           "retention_schedule", "run_failure_alert_sensor", "search_lifecycle_schedule", "search_sync_schedule", "stale_backup_sensor",
           "stale_search_snapshot_sensor", "system_metrics_schedule", "weekly_postgres_restore_check_schedule",
           "nightly_base_backup_schedule", "weekly_recovery_check_schedule", "wal_archive_sensor",
           "offsite_push_schedule", "replication_schedule", "replication_sensor"]
