"""run_failure_alert_sensor: every failed run of every job, to the audit log, Redis and the webhook."""

# no `from __future__ import annotations`: Dagster reads the parameter annotations to inject resources
import logging

import dagster as dg

from orchestrator_data.alerts import Alert, AlertDelivery, send_alert
from orchestrator_data.settings import SettingsError, load_settings
from resources import PostgresResource, RedisResource
from schedules._status import sensor_status

log = logging.getLogger(__name__)


def webhook_url() -> str | None:
    """Read at tick time, never at load time: the URL (often with a token) stays out of the UI."""
    try:
        secret = load_settings().alert_webhook_url
    except SettingsError as exc:
        log.warning("alert webhook disabled: %s", exc)
        return None
    return secret.get_secret_value() if secret is not None else None


def deliver(alert: Alert, postgres: PostgresResource, redis: RedisResource) -> AlertDelivery:
    """send_alert with the resources' clients; a target whose client cannot even be built counts as failed."""
    engine = client = None
    errors: dict[str, str] = {}
    try:
        engine = postgres.engine
    except Exception as exc:  # noqa: BLE001 - e.g. no URL and no local stack
        errors["audit_log"] = f"{type(exc).__name__}"
    try:
        client = redis.client
    except Exception as exc:  # noqa: BLE001
        errors["redis"] = f"{type(exc).__name__}"
    try:
        delivery = send_alert(alert, engine=engine, redis_client=client, webhook_url=webhook_url())
    finally:
        if engine is not None:
            engine.dispose()  # a sensor tick is short; do not keep idle connections between ticks
    for target, reason in errors.items():
        setattr(delivery, target, False)
        delivery.errors[target] = reason
    return delivery


def alert_from_failure(context: dg.RunFailureSensorContext) -> Alert:
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
    )


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    monitor_all_code_locations=True,
    default_status=sensor_status(),
    minimum_interval_seconds=30,
    description="Every failed run of any job in any code location: one alert (run id, job, failed steps, "
                "redacted error) to the audit log, the Redis `alerts` channel and ALERT_WEBHOOK_URL when set.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource,
                             redis: RedisResource):
    alert = alert_from_failure(context)
    delivery = deliver(alert, postgres, redis)
    if not delivery.delivered:
        # nowhere got it: fail the tick so the sensor page shows it
        raise RuntimeError(f"alert for run {alert.run_id} not delivered: {delivery.errors}")
    context.log.info(f"alert for run {alert.run_id} delivered to {', '.join(delivery.delivered)}"
                     + (f"; failed: {delivery.errors}" if delivery.errors else ""))
