"""replication_sensor ticked as Dagster's daemon ticks it (dg.build_sensor_context with one instance and the
real resources) on a real primary and standby: quiet while healthy, one alert when the standby falls behind,
none on the next tick (the cursor), quiet again once it caught up, one alert when it disappears."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from orchestrator_data.connections import resolve_url
from orchestrator_data.replication.lag import LagTarget, problems
from orchestrator_data.replication.status import ReplicationStatus
from orchestrator_data.settings import load_settings
from resources import AlertsResource, PostgresResource, RedisResource
from schedules.replication import replication_sensor
from tests.alerting import WebhookServer, alert_rows
from tests.databases import migrated_database


@pytest.fixture
def sensor_setup(standby_pair, stack, monkeypatch):
    """The sensor's `postgres` is the pair's primary; alerts go to a migrated database's audit trail, the
    stack's Redis and a local webhook."""
    monkeypatch.setenv("REPLICATION_LAG_TARGET_BYTES", str(1 << 16))
    with migrated_database(stack, prefix="replsensor") as (url, engine), WebhookServer() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url())
        alerts = AlertsResource(postgres=PostgresResource(database_url=url),
                                redis=RedisResource(redis_url=resolve_url("redis", load_settings())))
        resources = {"postgres": PostgresResource(database_url=standby_pair.url(standby_pair.primary)),
                     "alerts": alerts}
        yield standby_pair, resources, engine, hook


def _tick(instance, resources, cursor):
    with dg.build_sensor_context(cursor=cursor, resources=resources, instance=instance) as context:
        result = replication_sensor(context)
        return result, context.cursor


def test_replication_sensor_alerts_once_per_problem_and_keeps_its_cursor(sensor_setup):
    pair, resources, engine, hook = sensor_setup
    with dg.DagsterInstance.ephemeral() as instance:
        pair.wait_replayed()
        result, cursor = _tick(instance, resources, None)
        assert "primary on timeline 1" in result.skip_message and alert_rows(engine) == [] and hook.requests == []
        assert json.loads(cursor) == {"standbys": [pair.slot], "timeline": 1, "alerted": []}

        pair.pause_replay()
        try:
            with pair.connect(pair.primary) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS sensor_filler (pad text)")
                conn.execute("INSERT INTO sensor_filler SELECT repeat('x', 500) FROM generate_series(1, 1000)")
            result, cursor = _tick(instance, resources, cursor)
            assert json.loads(cursor)["alerted"] == [f"behind:{pair.slot}"]
            assert len(alert_rows(engine)) == 1 and len(hook.requests) == 1
            assert "not replayed" in hook.requests[0]["raw"] and '"critical"' in hook.requests[0]["raw"]
            assert _tick(instance, resources, cursor)[1] == cursor and len(alert_rows(engine)) == 1  # not again
        finally:
            with pair.connect(pair.standby) as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
        pair.wait_replayed()
        result, cursor = _tick(instance, resources, cursor)
        assert json.loads(cursor)["alerted"] == [] and len(alert_rows(engine)) == 1  # cleared, quiet

        pair.standby.stop()
        try:
            result, cursor = _tick(instance, resources, cursor)
            assert json.loads(cursor) == {"standbys": [pair.slot], "timeline": 1, "alerted": [f"gone:{pair.slot}"]}
            assert len(alert_rows(engine)) == 2 and "no longer streaming" in hook.requests[-1]["raw"]
            assert _tick(instance, resources, cursor)[1] == cursor and len(alert_rows(engine)) == 2
        finally:
            pair.standby.start()
            pair.wait_streaming()
        result, cursor = _tick(instance, resources, cursor)
        assert json.loads(cursor)["alerted"] == [] and len(alert_rows(engine)) == 2


def test_a_new_timeline_is_reported_once_as_the_primary_having_changed():
    status = ReplicationStatus(role="primary", timeline=3, position="0/3000000", server="10.0.0.2:5432")
    found = problems(status, LagTarget(30, 1 << 20), known_standbys=[], known_timeline=2)
    assert found == {"timeline:3": "the primary changed: timeline 2 -> 3, now 10.0.0.2:5432 (a failover or a "
                                   "switchover)"}
    assert problems(status, LagTarget(30, 1 << 20), known_standbys=[], known_timeline=3) == {}
    assert problems(status, LagTarget(30, 1 << 20)) == {}  # nothing known yet: nothing to compare
