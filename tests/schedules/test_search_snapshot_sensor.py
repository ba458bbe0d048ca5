"""stale_search_snapshot_sensor on the real services (with a monkeypatched clock) and the daily schedule."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import timedelta

import dagster as dg
import pytest

from orchestrator_data.connections import resolve_url
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import snapshot_checks, snapshots, sync
from orchestrator_data.search.indices import Layout, drop_indices
from orchestrator_data.settings import load_settings
from resources import AlertsResource, ElasticsearchResource, PostgresResource, RedisResource
from schedules import search as search_schedules
from schedules.search import daily_search_snapshot_schedule, stale_search_snapshot_sensor
from tests.alerting import alert_rows
from tests.search_snapshots import delete_repository

pytestmark = pytest.mark.integration


@pytest.fixture
def services(migrated_url, engine):
    seed(engine, "testing", SeedPlan(executions=20))
    layout = Layout(f"w{uuid.uuid4().hex[:10]}")
    postgres = PostgresResource(database_url=migrated_url)
    redis = RedisResource(redis_url=resolve_url("redis", load_settings()))
    elasticsearch = ElasticsearchResource(index_prefix=layout.prefix)
    sync.create_indices(engine, elasticsearch.client, layout)
    sync.sync(engine, elasticsearch.client, layout)
    yield {"postgres": postgres, "elasticsearch": elasticsearch, "alerts": AlertsResource(postgres=postgres, redis=redis)}
    delete_repository(elasticsearch.client, elasticsearch.snapshot_repository_of())
    drop_indices(elasticsearch.client, layout)
    elasticsearch.client.close()


@functools.cache
def _daemon_instance() -> dg.DagsterInstance:
    """One instance for every tick, as the daemon has (without one, each tick sets up an ephemeral one)."""
    return dg.DagsterInstance.ephemeral()


def _tick(resources: dict, cursor: str | None):
    with dg.build_sensor_context(cursor=cursor, resources=resources, instance=_daemon_instance()) as context:
        result = stale_search_snapshot_sensor(context)
        return result, json.loads(context.cursor) if context.cursor else {}


def test_alerts_once_per_stale_snapshot_and_promise_and_is_quiet_when_fresh(services, engine, monkeypatch):
    # nothing yet: one alert per promise, keyed "none"; the next tick repeats nothing
    result, cursor = _tick(services, None)
    assert cursor == {"successful": "none", "restore-checked": "none"} and len(alert_rows(engine)) == 2
    assert "no successful search snapshot" in result.skip_message
    assert _tick(services, json.dumps(cursor))[1] == cursor and len(alert_rows(engine)) == 2

    es, layout = services["elasticsearch"].client, services["elasticsearch"].layout()
    repository = services["elasticsearch"].snapshot_repository_of()
    info = snapshots.create_snapshot(engine, es, layout, repository)
    assert snapshot_checks.restore_check(engine, es, layout, repository).ok
    result, cursor = _tick(services, json.dumps(cursor))
    assert result.skip_message.count("newest") == 2 and "already" not in result.skip_message
    assert len(alert_rows(engine)) == 2

    # 27 hours later: the daily promise is broken, once; the weekly one still holds
    monkeypatch.setattr(search_schedules, "utcnow", lambda: info.started_at + timedelta(hours=27))
    result, cursor = _tick(services, json.dumps(cursor))
    assert cursor["successful"] == info.name and len(alert_rows(engine)) == 3
    [row] = alert_rows(engine)[-1:]
    assert "search successful snapshot is stale" in json.dumps(row.new_values)
    for _ in range(2):
        result, cursor = _tick(services, json.dumps(cursor))
        assert "already alerted" in result.skip_message and len(alert_rows(engine)) == 3

    # nine days later the restore-checked promise is broken too
    monkeypatch.setattr(search_schedules, "utcnow", lambda: info.started_at + timedelta(days=9))
    result, cursor = _tick(services, json.dumps(cursor))
    assert cursor == {"successful": info.name, "restore-checked": info.name} and len(alert_rows(engine)) == 4


def test_daily_schedule_runs_the_snapshot_job_at_three_and_starts_stopped_outside_production():
    assert daily_search_snapshot_schedule.cron_schedule == "0 3 * * *"
    assert daily_search_snapshot_schedule.execution_timezone == "UTC"
    assert daily_search_snapshot_schedule.job_name == "search_snapshot_job"
    assert daily_search_snapshot_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert stale_search_snapshot_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    from definitions import defs

    assert defs.resolve_schedule_def("daily_search_snapshot_schedule") is not None
    assert defs.resolve_sensor_def("stale_search_snapshot_sensor") is not None
    job = defs.resolve_job_def("search_snapshot_job")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "search_snapshot", "search_snapshot_restore_check"}
