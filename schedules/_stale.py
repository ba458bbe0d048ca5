"""The stale-copy sensors (PostgreSQL backups, search snapshots), built by one factory: each hour, alert
once per stale copy and promise, remembering in the cursor, per promise, the id alerted for."""

import json
from collections.abc import Callable

import dagster as dg

from assets._runbook import runbook_metadata
from orchestrator_data.alerts import Alert
from orchestrator_data.freshness import Freshness
from orchestrator_data.runbook import described
from resources import AlertsResource
from schedules._status import sensor_status


def _cursor(text: str | None) -> dict:
    """The id alerted for, per promise. An older cursor was the bare id of the restore-checked promise."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"restore-checked": text}
    return value if isinstance(value, dict) else {}


def alert_stale(context: dg.SensorEvaluationContext, promises: list[Freshness], alerts: AlertsResource,
                sensor: str, title: Callable[[Freshness], str]) -> dg.SkipReason:
    """Alert for each broken promise not yet alerted for its current copy; a promise whose alert reached
    no target keeps its cursor, so the next tick tries again."""
    alerted = _cursor(context.cursor)
    said = []
    for freshness in promises:
        if freshness.ok:
            said.append(freshness.describe())
            continue
        if alerted.get(freshness.promise) == freshness.cursor:
            said.append(f"already alerted: {freshness.describe()}")
            continue
        delivery = alerts.send(Alert(run_id=None, job=sensor, error=freshness.describe(), severity="warning",
                                     title=title(freshness),
                                     runbook=alerts.runbook(f"stale {freshness.promise} {freshness.kind}")))
        if not delivery.delivered:
            said.append(f"alert not delivered, will retry: {delivery.errors}")  # cursor unchanged
            continue
        alerted[freshness.promise] = freshness.cursor
        said.append(f"alerted ({', '.join(delivery.delivered)}): {freshness.describe()}")
    if alerted:
        context.update_cursor(json.dumps(alerted, sort_keys=True))
    return dg.SkipReason("; ".join(said))


def stale_copy_sensor(name: str, description: str, resource_keys: set[str],
                      promises: Callable[[dict], list[Freshness]],
                      title: Callable[[Freshness], str]) -> dg.SensorDefinition:
    """A sensor `name` that judges `promises(resources)` (a dict of `resource_keys`) hourly and alerts
    through the `alerts` resource; its description ends with its runbook section."""

    @dg.sensor(name=name, minimum_interval_seconds=3600, default_status=sensor_status(),
               required_resource_keys={"alerts", *resource_keys}, description=described(description, name),
               metadata=runbook_metadata(name))
    def _sensor(context: dg.SensorEvaluationContext, **resources):
        alerts: AlertsResource = resources.pop("alerts")
        return alert_stale(context, promises(resources), alerts, name, title)

    return _sensor
