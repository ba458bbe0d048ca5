"""Copies off the machine on a schedule: every 15 minutes, what the bucket lacks goes up (the WAL archive's
completed segments most of all, so the copy off the machine stays within minutes of the local archive)."""

import dagster as dg

from assets._runbook import runbook_metadata
from jobs import offsite_push_job
from schedules._status import schedule_status_if

# minute 7, 22, 37, 52: off the backups' round minutes, after each night's dump (02:00) and base backup (01:30)
offsite_push_schedule = dg.ScheduleDefinition(
    name="offsite_push_schedule",
    job=offsite_push_job,
    metadata=runbook_metadata("offsite_push_job"),
    cron_schedule="7-59/15 * * * *",
    execution_timezone="UTC",
    description="Copy what the bucket lacks (dumps, base backups, completed WAL) off the machine every 15 minutes.",
    # RUNNING (in production) only where a bucket is configured
    default_status=schedule_status_if(lambda settings: bool(settings.offsite_bucket)),
)
