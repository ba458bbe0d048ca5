"""Point-in-time recovery on a schedule: a base backup every night, a recovery check every week, and an
alert when the WAL archiver stops or its slot holds back too much WAL."""

import json

import dagster as dg

from assets._runbook import runbook_metadata
from jobs import postgres_base_backup_job, recovery_check_job
from orchestrator_data.alerts import Alert
from orchestrator_data.recovery.layout import Layout
from orchestrator_data.recovery.server import Primary
from orchestrator_data.recovery.status import archive_status
from orchestrator_data.runbook import described
from resources import AlertsResource, PostgresResource
from schedules._status import schedule_status_if, sensor_status

# RUNNING (in production) only where the WAL archive is on: without it a base backup can only fail
# waiting for its WAL, and a recovery check has nothing to restore
_WITH_ARCHIVE = schedule_status_if(lambda settings: settings.wal_archive_mode != "off")

# 01:30 UTC, before the logical backup at 02:00: incremental most nights, full weekly or once the
# incrementals reach BASE_BACKUP_CHAIN_SHARE of the full (recovery/cadence.py)
nightly_base_backup_schedule = dg.ScheduleDefinition(
    name="nightly_base_backup_schedule",
    job=postgres_base_backup_job,
    metadata=runbook_metadata("postgres_base_backup_job"),
    cron_schedule="30 1 * * *",
    execution_timezone="UTC",
    description="Take a base backup (incremental; full weekly or once the incrementals reach BASE_BACKUP_CHAIN_SHARE "
                "of the full) every night at 01:30 UTC.",
    default_status=_WITH_ARCHIVE,
)

# Sunday 05:00, after the night's base backup and the logical restore check
weekly_recovery_check_schedule = dg.ScheduleDefinition(
    name="weekly_recovery_check_schedule",
    job=recovery_check_job,
    metadata=runbook_metadata("recovery_check_job"),
    cron_schedule="0 5 * * 0",
    execution_timezone="UTC",
    description="Restore a random moment of the recovery window and prove it, every Sunday 05:00 UTC.",
    default_status=_WITH_ARCHIVE,
)

SENSOR = "wal_archive_sensor"


def archive_problems(found, alert_bytes: int) -> dict[str, str]:
    """What the sensor alerts for, by kind: an archiver not streaming, a slot that lost WAL or holds too much."""
    problems = {}
    if not found.streaming:
        problems["stopped"] = f"the WAL archiver is not streaming (slot {found.slot}; last archived {found.last_archived_at})"
    if found.slot_wal_status in (None, "lost", "unreserved"):
        problems["slot"] = f"slot {found.slot} is {found.slot_wal_status or 'missing'}"
    if (found.slot_retained_bytes or 0) > alert_bytes:
        problems["retained"] = f"slot {found.slot} retains {found.slot_retained_bytes} bytes (alert above {alert_bytes})"
    return problems


@dg.sensor(name=SENSOR, minimum_interval_seconds=60, default_status=sensor_status(), metadata=runbook_metadata(SENSOR),
           description=described("Alerts (audit log, Redis, webhook) when the WAL archiver stops streaming or its "
                                 "slot retains more than WAL_SLOT_ALERT_BYTES or lost WAL; once per problem until it "
                                 "clears (the cursor keeps what was alerted).", SENSOR))
def wal_archive_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource, alerts: AlertsResource):
    # resources as parameters (not required_resource_keys): what the daemon and dg.build_sensor_context both hand over
    settings = postgres.settings
    if settings.wal_archive_mode == "off":
        return dg.SkipReason("WAL_ARCHIVE_MODE is off")
    found = archive_status(Primary(postgres.url()), Layout.from_settings(settings), settings.wal_archive_slot)
    problems = archive_problems(found, settings.wal_slot_alert_bytes)
    alerted = set(json.loads(context.cursor)) if context.cursor else set()
    fresh = [text for kind, text in problems.items() if kind not in alerted]
    if fresh:
        delivery = alerts.send(Alert(run_id=None, job=SENSOR, error="; ".join(fresh), severity="critical",
                                     title="WAL archive at risk", runbook=alerts.runbook(SENSOR)))
        if not delivery.delivered:
            return dg.SkipReason(f"alert not delivered, will retry: {delivery.errors}")
    # a problem that cleared leaves the cursor: it alerts again if it comes back
    context.update_cursor(json.dumps(sorted(problems)))
    return dg.SkipReason("; ".join(problems.values()) or f"archive streaming, lag {found.lag_bytes} bytes")
