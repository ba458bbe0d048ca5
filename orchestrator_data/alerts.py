"""Alert fan-out: one alert to the audit log, Redis pub/sub and an optional webhook.

Pure core (no Dagster): the run-failure and stale-backup sensors build an `Alert` and call
`send_alert`. Each target is tried on its own — one that is down never stops the others — and the
returned `AlertDelivery` says which got it. The error text is redacted when the alert is built,
so nothing secret reaches any target; the webhook URL itself (often carrying a token) is never
part of a payload or of a delivery error.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import redis
import sqlalchemy as sa

from orchestrator_data.postgres import models, roles
from orchestrator_data.redaction import redact
from orchestrator_data.redis import pubsub

log = logging.getLogger(__name__)

AUDIT_ACTION = "ALERT"  # allowed by ck_audit_logs_action from revision 0003
AUDIT_TABLE = "_dagster_run"
ERROR_LIMIT = 4000
WEBHOOK_TIMEOUT_S = 5.0
SEVERITIES = ("info", "warning", "critical")
TARGETS = ("audit_log", "redis", "webhook")


@dataclass(frozen=True)
class Alert:
    """What went wrong, where. `error` is redacted (and truncated) on construction."""

    run_id: str | None
    job: str
    step: str | None = None  # the failed step key(s), comma-separated
    error: str = ""
    severity: str = "critical"
    occurred_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    title: str = ""
    runbook: str | None = None  # the runbook section that says what this means and what to do

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        object.__setattr__(self, "error", redact(self.error or "")[:ERROR_LIMIT])
        if not self.title:
            object.__setattr__(self, "title", f"{self.job} failed" if self.run_id else self.job)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "severity": self.severity, "run_id": self.run_id, "job": self.job,
                "step": self.step, "error": self.error, "occurred_at": self.occurred_at.isoformat(),
                "runbook": self.runbook}

    def detail(self) -> str:
        where = f"run {self.run_id}" if self.run_id else "no run"
        step = f", step {self.step}" if self.step else ""
        text = f"{self.job} ({where}{step}): {self.error}" if self.error else f"{self.job} ({where}{step})"
        return f"{text} — runbook: {self.runbook}" if self.runbook else text


@dataclass
class AlertDelivery:
    """Per target: True delivered, False failed (reason in `errors`), None not configured."""

    audit_log: bool | None = None
    redis: bool | None = None
    webhook: bool | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def delivered(self) -> list[str]:
        return [t for t in TARGETS if getattr(self, t) is True]

    @property
    def failed(self) -> list[str]:
        return [t for t in TARGETS if getattr(self, t) is False]

    @property
    def ok(self) -> bool:
        """At least one target got it and none failed."""
        return bool(self.delivered) and not self.failed


def write_audit(engine: sa.Engine, alert: Alert) -> int:
    """Insert the alert into audit_logs as the owner role; returns the row id."""
    with engine.begin() as conn:
        # the app role may not insert into audit_logs; the migrating login may act as the owner
        roles.act_as_owner(conn)
        return conn.execute(
            models.audit_logs.insert().values(
                actor_role=sa.func.current_user(), login_role=sa.func.session_user(), action=AUDIT_ACTION,
                table_name=AUDIT_TABLE, record_id=alert.run_id, new_values=alert.to_dict(),
            ).returning(models.audit_logs.c.id)
        ).scalar_one()


def post_webhook(url: str, alert: Alert, timeout: float = WEBHOOK_TIMEOUT_S) -> int:
    """POST the alert as JSON; returns the HTTP status. Raises on a non-2xx answer or no answer."""
    body = json.dumps(alert.to_dict(), separators=(",", ":")).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "orchestrator-data-alerts"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - operator-configured URL
        return response.status


def _reason(exc: BaseException, *secrets: str | None) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return redact(text)[:500]


def send_alert(alert: Alert, *, engine: sa.Engine | None = None, redis_client: redis.Redis | None = None,
               webhook_url: str | None = None, channel: str | None = None) -> AlertDelivery:
    """Deliver to every configured target (None = not configured); never raises for a target.
    `channel` is the Redis pub/sub channel (default: the keyspace's `alerts`)."""
    delivery = AlertDelivery()
    if engine is not None:
        try:
            write_audit(engine, alert)
            delivery.audit_log = True
        except Exception as exc:  # noqa: BLE001 - one target down must not stop the others
            delivery.audit_log, delivery.errors["audit_log"] = False, _reason(exc)
    if redis_client is not None:
        try:
            pubsub.publish_alert(redis_client, alert.severity, alert.title, alert.detail(), source=alert.job,
                                 channel=channel)
            delivery.redis = True
        except Exception as exc:  # noqa: BLE001
            delivery.redis, delivery.errors["redis"] = False, _reason(exc)
    if webhook_url:
        try:
            post_webhook(webhook_url, alert)
            delivery.webhook = True
        except Exception as exc:  # noqa: BLE001
            delivery.webhook, delivery.errors["webhook"] = False, _reason(exc, webhook_url)
    for target, reason in delivery.errors.items():
        log.warning("alert %r not delivered to %s: %s", alert.title, target, reason)
    return delivery
