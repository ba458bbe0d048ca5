"""Alert fan-out on the real services: audit_logs in a migrated PostgreSQL, Redis pub/sub, a local webhook."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestrator_data import alerts
from orchestrator_data.alerts import Alert, send_alert
from orchestrator_data.postgres import catalog, migrator
from orchestrator_data.redis import pubsub
from orchestrator_data.redis.client import create_client
from orchestrator_data.stack.common import free_port
from tests.alerting import WebhookServer, alert_rows
from tests.databases import REVISIONS, fresh_database

pytestmark = pytest.mark.integration

SECRET_PW = "Sup3rSecretPw"
HOOK_TOKEN = "WebH00kT0ken"


def _alert(**overrides) -> Alert:
    return Alert(**({"run_id": "run-abc123", "job": "backup_job", "step": "postgres_backup",
                     "error": f"could not connect to postgresql://backup:{SECRET_PW}@db:5432/app; password={SECRET_PW}"}
                    | overrides))


def test_an_alert_reaches_the_audit_log_redis_and_the_webhook_without_secrets(engine, redis_client):
    alert = _alert()
    with WebhookServer() as hook, pubsub.subscribe_alerts(redis_client) as subscription:
        delivery = send_alert(alert, engine=engine, redis_client=redis_client,
                              webhook_url=hook.url(f"/hook?token={HOOK_TOKEN}"))
        event = subscription.get(timeout=5)
        assert hook.received.wait(5)
    assert delivery.ok and delivery.delivered == ["audit_log", "redis", "webhook"] and delivery.errors == {}

    [row] = alert_rows(engine)
    assert (row.action, row.table_name, row.record_id) == ("ALERT", "_dagster_run", "run-abc123")
    assert row.new_values["job"] == "backup_job" and row.new_values["step"] == "postgres_backup"
    assert row.actor_role == "orchestrator_owner"  # written as the owner, not as the app role

    assert event is not None and event.channel == "alerts"
    assert event.data["severity"] == "critical" and event.data["title"] == "backup_job failed"
    assert "run-abc123" in event.data["detail"] and event.data["source"] == "backup_job"

    [request] = hook.requests
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["json"]["run_id"] == "run-abc123" and "could not connect" in request["json"]["error"]

    for payload in (str(row.new_values), str(event.data), request["raw"]):
        assert SECRET_PW not in payload and HOOK_TOKEN not in payload
        assert "***" in payload


def test_one_target_down_never_stops_the_others(engine, redis_client):
    dead_redis = create_client(f"redis://127.0.0.1:{free_port()}/0", retries=0, socket_timeout=1)
    dead_hook = f"http://127.0.0.1:{free_port()}/hook?token={HOOK_TOKEN}"
    with WebhookServer() as hook:
        down = send_alert(_alert(run_id="run-1"), engine=engine, redis_client=dead_redis, webhook_url=hook.url())
        assert hook.received.wait(5)
    assert (down.audit_log, down.redis, down.webhook) == (True, False, True)
    assert not down.ok and down.failed == ["redis"] and "redis" in down.errors

    with pubsub.subscribe_alerts(redis_client) as subscription:
        hook_down = send_alert(_alert(run_id="run-2"), engine=engine, redis_client=redis_client, webhook_url=dead_hook)
        assert subscription.get(timeout=5).data["detail"].startswith("backup_job (run run-2")
    assert (hook_down.audit_log, hook_down.redis, hook_down.webhook) == (True, True, False)
    assert HOOK_TOKEN not in hook_down.errors["webhook"]  # the URL's token never reaches a log

    dead_redis.close()
    assert [r.record_id for r in alert_rows(engine)] == ["run-1", "run-2"]


def test_an_unmigrated_database_fails_only_the_audit_target(stack, redis_client):
    from orchestrator_data.postgres import client

    with fresh_database(stack, prefix="alerts_bare") as url, WebhookServer() as hook:
        engine = client.create_engine(url)
        try:
            delivery = send_alert(_alert(), engine=engine, redis_client=redis_client, webhook_url=hook.url())
        finally:
            engine.dispose()
    assert (delivery.audit_log, delivery.redis, delivery.webhook) == (False, True, True)
    assert "audit_logs" in delivery.errors["audit_log"]


def test_unconfigured_targets_are_none_and_severity_is_validated():
    delivery = send_alert(_alert())
    assert (delivery.audit_log, delivery.redis, delivery.webhook) == (None, None, None)
    assert delivery.delivered == [] and not delivery.ok
    with pytest.raises(ValueError, match="severity"):
        _alert(severity="panic")
    assert len(_alert(error="x" * 10_000).error) == alerts.ERROR_LIMIT


def test_revision_0003_downgrade_refuses_while_alert_rows_exist(migrated_url, engine):
    url = migrated_url
    assert catalog.check_drift(url) == []
    with engine.connect() as conn:  # one CHECK, the name 0001 gave it, now allowing ALERT
        [(name, definition)] = conn.execute(sa.text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'audit_logs'::regclass AND contype = 'c'")).all()
    assert name == "ck_audit_logs_ck_audit_logs_action" and "'ALERT'" in definition
    # empty: rolls back (check=False: below 0005 the app role has table-level UPDATE and DELETE again,
    # which the security check rightly reports)
    assert migrator.rollback(url, "0002", check=False).applied_revisions == REVISIONS[:1:-1]
    migrator.upgrade(url)
    send_alert(_alert(), engine=engine)
    with pytest.raises(migrator.MigrationFailed, match="ALERT row"):
        migrator.rollback(url, "0002")
    assert migrator.status(url).current == "0003"
