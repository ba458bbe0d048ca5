"""Copies off the machine on a schedule: every 15 minutes, what the bucket lacks goes up (the WAL archive's
completed segments most of all, so the copy off the machine stays within minutes of the local archive)."""

import dagster as dg

from assets._runbook import runbook_metadata
from jobs import offsite_push_job
from orchestrator_data.settings import SettingsError, load_settings
from schedules._status import schedule_status


def _offsite_schedule_status() -> dg.DefaultScheduleStatus:
    """RUNNING as the other backup schedules (production) only where a bucket is configured: without one
    every run could only fail. Decided once at load time, as they are."""
    try:
        configured = bool(load_settings().offsite_bucket)
    except SettingsError:
        configured = False
    return schedule_status() if configured else dg.DefaultScheduleStatus.STOPPED


# minute 7, 22, 37, 52: off the backups' round minutes, after each night's dump (02:00) and base backup (01:30)
offsite_push_schedule = dg.ScheduleDefinition(
    name="offsite_push_schedule",
    job=offsite_push_job,
    metadata=runbook_metadata("offsite_push_job"),
    cron_schedule="7-59/15 * * * *",
    execution_timezone="UTC",
    description="Copy what the bucket lacks (dumps, base backups, completed WAL) off the machine every 15 minutes.",
    default_status=_offsite_schedule_status(),
)
