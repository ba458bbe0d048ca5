"""wal_archive_sensor ticked as Dagster's daemon ticks it (dg.build_sensor_context with one instance and
the real resources) on the session's recovery chain (tests/recovery_chain.py): quiet while the archiver
streams, one alert when it stops, one more when its slot then holds back more than WAL_SLOT_ALERT_BYTES,
none on later ticks (the cursor keeps what was alerted), quiet and a cleared cursor once it is back."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from orchestrator_data.connections import resolve_url
from orchestrator_data.redis import pubsub
from orchestrator_data.redis.client import create_client
from orchestrator_data.settings import load_settings
from resources import AlertsResource, PostgresResource, RedisResource
from schedules.recovery import wal_archive_sensor
from tests.alerting import WebhookServer, alert_rows
from tests.databases import migrated_database

pytestmark = pytest.mark.integration

ALERT_BYTES = 1 << 20   # the smallest the setting takes: two 1 MB segments of the chain's cluster pass it


@pytest.fixture
def sensor_setup(recovery_chain, stack, monkeypatch):
    """The sensor's `postgres` is the chain's cluster (the archived server); alerts go to a migrated
    database's audit trail, the stack's Redis and a local webhook."""
    chain = recovery_chain
    for name, value in chain.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WAL_SLOT_ALERT_BYTES", str(ALERT_BYTES))
    with migrated_database(stack, prefix="walsensor") as (url, engine), WebhookServer() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url())
        redis_url = resolve_url("redis", load_settings())
        redis_client = create_client(redis_url)
        alerts = AlertsResource(postgres=PostgresResource(database_url=url), redis=RedisResource(redis_url=redis_url))
        resources = {"postgres": PostgresResource(database_url=chain.cluster.url()), "alerts": alerts}
        try:
            yield chain, resources, engine, hook, redis_client
        finally:
            if chain.archiver is None or chain.archiver.poll() is not None:
                chain.start_archiver()  # the chain is shared: leave it streaming
            chain.wait_archived()
            redis_client.close()


def _tick(instance, resources, cursor):
    with dg.build_sensor_context(cursor=cursor, resources=resources, instance=instance) as context:
        result = wal_archive_sensor(context)
        return result, context.cursor


def test_wal_archive_sensor_alerts_once_per_problem_and_keeps_its_cursor(sensor_setup):
    chain, resources, engine, hook, redis_client = sensor_setup
    with dg.DagsterInstance.ephemeral() as instance:
        chain.wait_archived()
        result, cursor = _tick(instance, resources, None)
        assert isinstance(result, dg.SkipReason) and "archive streaming" in result.skip_message
        assert json.loads(cursor) == [] and alert_rows(engine) == [] and hook.requests == []

        chain.stop_archiver()
        with pubsub.subscribe_alerts(redis_client) as subscription:
            result, cursor = _tick(instance, resources, cursor)
            event = subscription.get(timeout=5)
        assert json.loads(cursor) == ["stopped"] and "not streaming" in result.skip_message
        assert len(alert_rows(engine)) == 1 and len(hook.requests) == 1
        assert event.data["severity"] == "critical" and "not streaming" in event.data["detail"]
        assert _tick(instance, resources, cursor)[1] == cursor and len(alert_rows(engine)) == 1  # not again

        with chain.connect() as conn:  # nobody archives: the slot holds every byte written now
            for _ in range(2):
                conn.execute("INSERT INTO marks (i) SELECT coalesce(max(i), 0) + 1 FROM marks")
                conn.execute("SELECT pg_switch_wal()")
        result, cursor = _tick(instance, resources, cursor)
        assert json.loads(cursor) == ["retained", "stopped"] and len(alert_rows(engine)) == 2
        assert "retains" in hook.requests[-1]["raw"] and "not streaming" not in hook.requests[-1]["raw"]  # only the new one
        assert _tick(instance, resources, cursor)[1] == cursor and len(alert_rows(engine)) == 2

        chain.start_archiver()
        chain.wait_archived()
        result, cursor = _tick(instance, resources, cursor)
        assert json.loads(cursor) == [] and "archive streaming" in result.skip_message
        assert len(alert_rows(engine)) == 2 and len(hook.requests) == 2
