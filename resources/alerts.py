"""Alerts as a Dagster resource: the audit log (through the PostgreSQL resource), a Redis pub/sub channel
(through the Redis resource) and an optional webhook. The sensors take it as a parameter."""

from __future__ import annotations

import logging

from pydantic import Field

from orchestrator_data import runbook
from orchestrator_data.alerts import Alert, AlertDelivery, send_alert
from orchestrator_data.settings import SettingsError
from resources._base import SettingsResource
from resources.postgres import PostgresResource
from resources.redis import RedisResource


log = logging.getLogger(__name__)


class AlertsResource(SettingsResource):
    postgres: PostgresResource
    redis: RedisResource
    webhook_url: str | None = Field(None, description="Alerts are also POSTed here as JSON; set through "
                                                      "dg.EnvVar('ALERT_WEBHOOK_URL') (such URLs carry tokens).")
    channel: str | None = Field(None, description="Redis pub/sub channel (default: the keyspace's `alerts`).")

    def webhook(self) -> str | None:
        if self.webhook_url:
            return self.webhook_url.strip() or None
        try:
            secret = self.settings.alert_webhook_url
        except SettingsError as exc:  # a bad setting must not stop the alert reaching the other targets
            log.warning("alert webhook disabled: %s", exc)
            return None
        return secret.get_secret_value() if secret is not None else None

    def runbook(self, section: str) -> str:
        """The link to a runbook section, under RUNBOOK_URL."""
        try:
            base = self.settings.runbook_url
        except SettingsError:
            base = None
        return runbook.link(section, base)

    def send(self, alert: Alert) -> AlertDelivery:
        """send_alert with the resources' clients; a target whose client cannot even be built (no URL and
        no local stack) counts as failed, and the others are still tried."""
        engine = client = None
        errors: dict[str, str] = {}
        try:
            engine = self.postgres.engine
        except Exception as exc:  # noqa: BLE001
            errors["audit_log"] = type(exc).__name__
        try:
            client = self.redis.client
        except Exception as exc:  # noqa: BLE001
            errors["redis"] = type(exc).__name__
        try:
            delivery = send_alert(alert, engine=engine, redis_client=client, webhook_url=self.webhook(),
                                  channel=self.channel)
        finally:
            self.postgres.dispose()  # a sensor tick is short: keep no idle connections between ticks
        for target, reason in errors.items():
            setattr(delivery, target, False)
            delivery.errors[target] = reason
        return delivery
