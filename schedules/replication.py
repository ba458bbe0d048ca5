"""Replication watched: replication_sensor alerts once when a standby disappears, falls behind its lag target,
loses its slot's WAL, or when the primary changes (a new timeline), and is quiet while replication is
healthy; replication_schedule observes the postgres_replication asset (and its lag check) every 5 minutes."""

import json

import dagster as dg

from assets._runbook import runbook_metadata
from jobs import replication_job
from orchestrator_data.alerts import Alert
from orchestrator_data.replication.lag import LagTarget, problems
from orchestrator_data.replication.status import observe_engine
from orchestrator_data.runbook import described
from resources import AlertsResource, PostgresResource
from schedules._status import schedule_status, sensor_status

SENSOR = "replication_sensor"

replication_schedule = dg.ScheduleDefinition(
    name="replication_schedule",
    job=replication_job,
    metadata=runbook_metadata("replication_job"),
    cron_schedule="*/5 * * * *",
    description="Observe replication (who is primary, timeline, each standby's lag, slots) and check the lag "
                "against its target every 5 minutes.",
    default_status=schedule_status(),
)


def _cursor(text: str | None) -> dict:
    """What the sensor remembers: the standbys seen streaming, the timeline seen, the problems alerted."""
    found = json.loads(text) if text else {}
    return {"standbys": found.get("standbys", []), "timeline": found.get("timeline"),
            "alerted": found.get("alerted", [])}


@dg.sensor(name=SENSOR, minimum_interval_seconds=30, default_status=sensor_status(), metadata=runbook_metadata(SENSOR),
           description=described("Alerts (audit log, Redis, webhook) when a standby seen before stops streaming, "
                                 "falls behind REPLICATION_LAG_TARGET_SECONDS / _BYTES, its slot lost WAL, or the "
                                 "primary changed (a new timeline); once per problem until it clears (the cursor "
                                 "keeps the standbys and timeline seen and what was alerted).", SENSOR))
def replication_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource, alerts: AlertsResource):
    # resources as parameters: what the daemon and dg.build_sensor_context both hand over
    try:
        status = observe_engine(postgres.engine)
    finally:
        postgres.dispose()  # a tick keeps no idle connection until the next one
    seen = _cursor(context.cursor)
    found = problems(status, LagTarget.from_settings(postgres.settings), seen["standbys"], seen["timeline"])
    fresh = {kind: text for kind, text in found.items() if kind not in seen["alerted"]}
    if fresh:
        # a new primary alone is worth knowing (warning); a standby lost or behind puts data at risk
        severity = "critical" if any(not kind.startswith("timeline:") for kind in fresh) else "warning"
        delivery = alerts.send(Alert(run_id=None, job=SENSOR, error="; ".join(fresh.values()), severity=severity,
                                     title="Replication at risk", runbook=alerts.runbook(SENSOR)))
        if not delivery.delivered:
            return dg.SkipReason(f"alert not delivered, will retry: {delivery.errors}")
    streaming = sorted(s.application_name for s in status.standbys)
    # a standby that disappeared stays remembered (and alerted once) until it streams again; a new timeline
    # is alerted once, then becomes the one known
    remembered = sorted(set(streaming) | {kind.split(":", 1)[1] for kind in found if kind.startswith("gone:")})
    context.update_cursor(json.dumps({"standbys": remembered, "timeline": status.timeline,
                                      "alerted": sorted(k for k in found if not k.startswith("timeline:"))}))
    if found:
        return dg.SkipReason("; ".join(found.values()))
    return dg.SkipReason(f"{status.role} on timeline {status.timeline}: "
                         + (", ".join(f"{s.application_name} {s.replay_behind_bytes} bytes behind"
                                      for s in status.standbys) or "no standby"))
