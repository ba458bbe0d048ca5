"""run_failure_alert_sensor: every failed run of every job, to the audit log, Redis and the webhook."""

# no `from __future__ import annotations`: Dagster reads the parameter annotations to inject resources
import dagster as dg

from assets._runbook import runbook_metadata
from orchestrator_data.alerts import Alert
from resources import AlertsResource
from schedules._status import sensor_status


def alert_from_failure(context: dg.RunFailureSensorContext, runbook: str | None = None) -> Alert:
    steps = context.get_step_failure_events()
    messages = []
    for event in steps:
        error = getattr(event.event_specific_data, "error", None)
        # Dagster wraps the op's exception ("Error occurred while executing op"); the cause says what broke
        while error is not None and error.cause is not None:
            error = error.cause
        messages.append(f"{event.step_key}: {error.message.strip() if error else event.message}")
    return Alert(
        run_id=context.dagster_run.run_id,
        job=context.dagster_run.job_name,
        step=", ".join(e.step_key for e in steps if e.step_key) or None,
        error="\n".join(messages) or (context.failure_event.message or "run failed"),
        severity="critical",
        runbook=runbook,
    )


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    monitor_all_code_locations=True,
    default_status=sensor_status(),
    minimum_interval_seconds=30,
    metadata=runbook_metadata("run_failure_alert_sensor"),
    description="Every failed run of any job in any code location: one alert (run id, job, failed steps, "
                "redacted error, and the runbook section of the job) to the audit log, the Redis `alerts` "
                "channel and ALERT_WEBHOOK_URL when set. Runbook: docs/runbook.md#run_failure_alert_sensor",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertsResource):
    alert = alert_from_failure(context, alerts.runbook(context.dagster_run.job_name))
    delivery = alerts.send(alert)
    if not delivery.delivered:
        # nowhere got it: fail the tick so the sensor page shows it
        raise RuntimeError(f"alert for run {alert.run_id} not delivered: {delivery.errors}")
    context.log.info(f"alert for run {alert.run_id} delivered to {', '.join(delivery.delivered)}"
                     + (f"; failed: {delivery.errors}" if delivery.errors else ""))
