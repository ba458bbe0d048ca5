"""The alert sensors on the real services: a really failed run, and synthetic backup catalogues."""

from __future__ import annotations

import contextlib
import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from orchestrator_data.connections import resolve_url
from orchestrator_data.redis import pubsub
from orchestrator_data.redis.client import create_client
from orchestrator_data.settings import load_settings
from resources import AlertsResource, BackupStorageResource, PostgresResource, RedisResource
from schedules.alerts import run_failure_alert_sensor
from schedules import backups as backup_schedules
from schedules.backups import nightly_postgres_backup_schedule, stale_backup_sensor, weekly_postgres_restore_check_schedule
from tests.alerting import WebhookServer, alert_rows
from tests.databases import migrated_database

pytestmark = pytest.mark.integration

SECRET_PW = "Sup3rSecretPw"


@dg.op
def extract():
    return 1


@dg.op
def explode(value):
    raise RuntimeError(f"replica at postgresql://app:{SECRET_PW}@db:5432/app refused: password={SECRET_PW}")


@dg.job
def failing_job():
    explode(extract())


@pytest.fixture
def services(stack):
    """A migrated database, the stack's Redis, and resources on them."""
    with migrated_database(stack, prefix="sensors") as (url, engine):
        redis_url = resolve_url("redis", load_settings())
        client = create_client(redis_url)
        postgres, redis = PostgresResource(database_url=url), RedisResource(redis_url=redis_url)
        yield {"engine": engine, "redis": client,
               "resources": {"postgres": postgres, "redis": redis, "backup_storage": BackupStorageResource(),
                             "alerts": AlertsResource(postgres=postgres, redis=redis)}}
        client.close()
        client.connection_pool.disconnect()


def _alert_through_the_sensor(instance, run_id: str, services, monkeypatch):
    """Hand a failed run to run_failure_alert_sensor, as Dagster's daemon would, with all three targets
    listening; returns what Redis delivered and the webhook server (its requests)."""
    run = instance.get_run_by_id(run_id)
    [failure] = [r.dagster_event for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
    with WebhookServer() as hook, pubsub.subscribe_alerts(services["redis"]) as subscription:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url())
        with dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor", dagster_event=failure, dagster_instance=instance,
            dagster_run=run, resources=services["resources"],
        ) as context:
            run_failure_alert_sensor(context.for_run_failure())
        event = subscription.get(timeout=5)
        assert hook.received.wait(5)
    return event, hook


def test_run_failure_alert_sensor_alerts_every_target_about_a_real_failed_run(services, monkeypatch):
    with dg.DagsterInstance.ephemeral() as instance:
        result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        event, hook = _alert_through_the_sensor(instance, result.run_id, services, monkeypatch)

    [row] = alert_rows(services["engine"])
    assert (row.action, row.table_name, row.record_id) == ("ALERT", "_dagster_run", result.run_id)
    assert row.new_values["job"] == "failing_job" and row.new_values["step"] == "explode"
    assert row.new_values["runbook"] == "docs/runbook.md#failing_job"
    assert "refused" in row.new_values["error"]
    assert event.data["title"] == "failing_job failed" and result.run_id in event.data["detail"]
    [request] = hook.requests
    assert request["json"]["run_id"] == result.run_id and request["json"]["step"] == "explode"
    for payload in (json.dumps(row.new_values), json.dumps(event.data), request["raw"]):
        assert SECRET_PW not in payload


def _backup(root: Path, created: datetime, *, verified: bool | None = True,
            restore_checked: bool | None = None, checked_at: datetime | None = None) -> str:
    """A catalogue entry as orchestrator_data.backups writes it: the manifest, the sha256 re-check record
    (integrity.json) and the restore check record (verification.json)."""
    backup_id = f"{created:%Y%m%dT%H%M%SZ}-beef"
    path = root / backup_id
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({
        "id": backup_id, "created_at": created.isoformat(), "finished_at": (created + timedelta(seconds=3)).isoformat(),
        "size_bytes": 1234, "sha256": "0" * 64, "encryption": None, "compression": {"enabled": True},
        "server_version": "18.1", "migration_head": "0003", "file": "dump.pgc", "tables": {},
    }))
    if verified is not None:
        (path / "integrity.json").write_text(json.dumps({"checked_at": created.isoformat(), "ok": verified}))
    if restore_checked is not None:
        (path / "verification.json").write_text(json.dumps({"checked_at": (checked_at or created).isoformat(),
                                                            "ok": restore_checked}))
    return backup_id


@functools.cache
def _daemon_instance() -> dg.DagsterInstance:
    """One instance for every tick, as the daemon has; a context without one makes an ephemeral
    instance per tick, whose schema setup is most of a tick's time."""
    return dg.DagsterInstance.ephemeral()


def _tick(resources: dict, cursor: str | None):
    with dg.build_sensor_context(cursor=cursor, resources=resources, instance=_daemon_instance()) as context:
        result = stale_backup_sensor(context)
        return result, context.cursor


@contextlib.contextmanager
def _ticks_on_one_context(resources: dict):
    """Ticks of the sensor on one context, which carries the cursor from tick to tick as the daemon
    does: its resources are set up once (through a new context that setup was ~80% of a tick's CPU),
    the sensor's own judgement runs in full at every tick."""
    with dg.build_sensor_context(cursor=None, resources=resources, instance=_daemon_instance()) as context:
        yield lambda: stale_backup_sensor(context)


def _cursor(cursor: str | None) -> dict:
    return json.loads(cursor) if cursor else {}


def test_stale_backup_sensor_alerts_once_per_stale_backup_and_is_quiet_when_fresh(services, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path))
    monkeypatch.setenv("BACKUP_MAX_AGE_HOURS", "26")
    monkeypatch.setenv("RESTORE_CHECK_MAX_AGE_DAYS", "8")
    now = datetime.now(UTC)
    resources = services["resources"]

    # a backup whose file was never re-checked, and no restore check at all: one alert per promise, keyed "none"
    _backup(tmp_path, now - timedelta(hours=1), verified=None)
    result, cursor = _tick(resources, None)
    assert _cursor(cursor) == {"verified": "none", "restore-checked": "none"}
    assert len(alert_rows(services["engine"])) == 2
    assert _tick(resources, cursor)[1] == cursor and len(alert_rows(services["engine"])) == 2

    # a restore-checked backup five days old keeps the weekly promise; a verified one 30 h old breaks the nightly one
    checked = _backup(tmp_path, now - timedelta(days=5), verified=True, restore_checked=True)
    stale = _backup(tmp_path, now - timedelta(hours=30), verified=True)
    with WebhookServer() as hook, pubsub.subscribe_alerts(services["redis"]) as subscription:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url())
        result, cursor = _tick(resources, cursor)
        event = subscription.get(timeout=5)
        assert hook.received.wait(5)
        assert _cursor(cursor)["verified"] == stale and isinstance(result, dg.SkipReason)
        assert stale in result.skip_message and checked in result.skip_message
        assert event.data["severity"] == "warning" and stale in event.data["detail"]
        assert hook.requests[0]["json"]["title"] == "PostgreSQL verified backup is stale"

        for _ in range(3):  # later ticks: the cursor holds, no repeat
            result, cursor = _tick(resources, cursor)
            assert _cursor(cursor)["verified"] == stale and "already alerted" in result.skip_message
        assert len(hook.requests) == 1 and subscription.get(timeout=0.5) is None
    rows = alert_rows(services["engine"])
    assert len(rows) == 3 and rows[-1].record_id is None and stale in rows[-1].new_values["error"]
    assert rows[-1].new_values["runbook"].startswith("docs/runbook.md#stale-")

    fresh = _backup(tmp_path, now - timedelta(hours=2), verified=True)
    result, cursor = _tick(resources, cursor)
    assert fresh in result.skip_message and len(alert_rows(services["engine"])) == 3

    # a failed sha256 re-check does not count as verified: the newer-but-corrupt one is passed over
    _backup(tmp_path, now - timedelta(minutes=5), verified=False)
    assert fresh in _tick(resources, cursor)[0].skip_message

    # the weekly promise breaks once its newest restore-checked backup is older than 8 days
    monkeypatch.setenv("RESTORE_CHECK_MAX_AGE_DAYS", "4")
    result, cursor = _tick(resources, cursor)
    assert _cursor(cursor)["restore-checked"] == checked and len(alert_rows(services["engine"])) == 4
    assert "PostgreSQL restore-checked backup is stale" in [r.new_values["title"] for r in alert_rows(services["engine"])]


def _ticks(schedule: dg.ScheduleDefinition, start: datetime, end: datetime) -> list[datetime]:
    """The times `schedule` fires between start and end, from its own cron string."""
    from dagster._utils.schedules import cron_string_iterator

    times = []
    for tick in cron_string_iterator(start.timestamp(), schedule.cron_schedule, schedule.execution_timezone):
        if tick > end:
            return times
        times.append(tick.astimezone(UTC))
    return times


def test_a_simulated_fortnight_of_schedule_ticks_raises_no_false_alert(services, tmp_path, monkeypatch):
    """Nightly backups (verified when written) and weekly restore checks as the two schedules fire them,
    with the sensor ticking hourly in between: every promise holds, so no tick alerts. Then the backups
    stop: the nightly promise alerts once, on the first tick past BACKUP_MAX_AGE_HOURS."""
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path))
    start = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)  # a Sunday, before that night's backup
    end = start + timedelta(days=15)
    events = [(t + timedelta(minutes=5), "backup") for t in _ticks(nightly_postgres_backup_schedule, start, end)]
    events += [(t + timedelta(minutes=20), "restore") for t in _ticks(weekly_postgres_restore_check_schedule, start, end)]
    events.sort()
    # the project was set up the night before: one backup, restore-checked
    newest = _backup(tmp_path, start - timedelta(hours=22), restore_checked=True)
    with _ticks_on_one_context(services["resources"]) as tick:
        now = start
        while now <= end:
            while events and events[0][0] <= now:
                at, what = events.pop(0)
                if what == "backup":
                    newest = _backup(tmp_path, at, verified=True)
                else:  # the restore check checks the newest backup
                    (tmp_path / newest / "verification.json").write_text(
                        json.dumps({"checked_at": at.isoformat(), "ok": True}))
            monkeypatch.setattr(backup_schedules, "utcnow", lambda now=now: now)
            result = tick()
            assert "alerted" not in result.skip_message, f"false alert at {now}: {result.skip_message}"
            now += timedelta(hours=1)
        assert alert_rows(services["engine"]) == []

        # the nightly backups stop: one alert, 26 h after the last one, and no repeat afterwards
        last = datetime.strptime(newest.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        alerted_at = []
        for hour in range(1, 60):
            at = end + timedelta(hours=hour)
            monkeypatch.setattr(backup_schedules, "utcnow", lambda at=at: at)
            result = tick()
            if "alerted (" in result.skip_message:
                alerted_at.append(at)
        assert len(alerted_at) == 1 and timedelta(hours=26) < alerted_at[0] - last <= timedelta(hours=27)
    assert [r.new_values["title"] for r in alert_rows(services["engine"])] == ["PostgreSQL verified backup is stale"]


def test_stale_backup_sensor_keeps_its_cursor_when_no_target_got_the_alert(tmp_path, monkeypatch):
    from orchestrator_data.stack.common import free_port

    monkeypatch.setenv("BACKUP_DIR", str(tmp_path))
    _backup(tmp_path, datetime.now(UTC) - timedelta(days=3), verified=True, restore_checked=True)
    postgres = PostgresResource(database_url=f"postgresql://x:y@127.0.0.1:{free_port()}/db", pool_timeout=1)
    redis = RedisResource(redis_url=f"redis://127.0.0.1:{free_port()}/0", retries=0, socket_timeout=1)
    dead = {"backup_storage": BackupStorageResource(), "alerts": AlertsResource(postgres=postgres, redis=redis)}
    result, cursor = _tick(dead, None)
    assert cursor is None and "will retry" in result.skip_message


def test_a_restore_check_that_finds_a_difference_alerts_every_target(services, tmp_path, monkeypatch):
    """End to end: a backup whose manifest disagrees with its dump fails postgres_restore_check, and
    the run-failure sensor carries that failure to the audit log, Redis and the webhook."""
    from assets.backups import postgres_restore_check
    from orchestrator_data.backups import create_backup
    from orchestrator_data.postgres.seed import seed
    from orchestrator_data.postgres.seed_data import SeedPlan

    url = services["resources"]["postgres"].database_url
    seed(services["engine"], "testing", SeedPlan(executions=100))
    backup_dir = tmp_path / "backups"
    monkeypatch.setenv("BACKUP_DIR", str(backup_dir))
    entry = create_backup(url, backup_dir)
    manifest = json.loads((entry.path / "manifest.json").read_text())
    manifest["tables"]["executions"]["rows"] += 1
    (entry.path / "manifest.json").write_text(json.dumps(manifest))

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([postgres_restore_check], resources=services["resources"], instance=instance,
                                raise_on_error=False)
        assert not result.success
        event, hook = _alert_through_the_sensor(instance, result.run_id, services, monkeypatch)

    [row] = alert_rows(services["engine"])
    assert row.record_id == result.run_id and row.new_values["step"] == "postgres_restore_check"
    assert "executions" in row.new_values["error"] and entry.id in row.new_values["error"]
    assert result.run_id in event.data["detail"]
    [request] = hook.requests
    assert request["json"]["run_id"] == result.run_id and "executions" in request["json"]["error"]
