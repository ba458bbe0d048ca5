"""The schedules and sensors are registered with the intended cron and default status."""

from __future__ import annotations

import importlib

import dagster as dg
import pytest

import schedules
import schedules.alerts
import schedules.backups
import schedules.metrics
import schedules.offsite
import schedules.recovery
import schedules.replication
import schedules.search

EXPECTED_SCHEDULES = {
    "health_schedule": ("*/15 * * * *", "health_job"),
    "nightly_postgres_backup_schedule": ("0 2 * * *", "postgres_backup_job"),
    "weekly_postgres_restore_check_schedule": ("0 4 * * 0", "postgres_restore_check_job"),
    "daily_postgres_backup_prune_schedule": ("30 5 * * *", "postgres_backup_prune_job"),
    "search_sync_schedule": ("*/5 * * * *", "search_sync_job"),
    "search_lifecycle_schedule": ("17 * * * *", "search_lifecycle_job"),
    "system_metrics_schedule": ("*/5 * * * *", "system_metrics_job"),
    "daily_search_snapshot_schedule": ("0 3 * * *", "search_snapshot_job"),
    "retention_schedule": ("41 3 * * *", "retention_job"),
    "nightly_base_backup_schedule": ("30 1 * * *", "postgres_base_backup_job"),
    "weekly_recovery_check_schedule": ("0 5 * * 0", "recovery_check_job"),
    "offsite_push_schedule": ("7-59/15 * * * *", "offsite_push_job"),
    "replication_schedule": ("*/5 * * * *", "replication_job"),
}
SENSORS = ("run_failure_alert_sensor", "stale_backup_sensor", "stale_search_snapshot_sensor", "wal_archive_sensor",
           "replication_sensor")


def _reload():
    importlib.reload(schedules.alerts)
    importlib.reload(schedules.backups)
    importlib.reload(schedules.metrics)
    importlib.reload(schedules.offsite)
    importlib.reload(schedules.recovery)
    importlib.reload(schedules.replication)
    importlib.reload(schedules.search)
    return importlib.reload(schedules)


@pytest.fixture
def environment(monkeypatch):
    """Set ENVIRONMENT, reload the schedule modules; afterwards restore both."""
    def set_to(value: str):
        monkeypatch.setenv("ENVIRONMENT", value)
        return _reload()
    yield set_to
    monkeypatch.undo()
    _reload()


def test_schedules_and_sensors_are_registered_with_their_cron_and_job():
    from definitions import defs

    for name, (cron, job) in EXPECTED_SCHEDULES.items():
        schedule = defs.resolve_schedule_def(name)
        assert (schedule.cron_schedule, schedule.job_name) == (cron, job)
    assert defs.resolve_schedule_def("nightly_postgres_backup_schedule").execution_timezone == "UTC"
    retention = defs.resolve_schedule_def("retention_schedule")
    # production refuses a purge without confirm: the schedule's own run config carries it
    assert retention.execution_timezone == "UTC"
    assert retention.evaluate_tick(dg.build_schedule_context()).run_requests[0].run_config == {
        "ops": {"retention_purge": {"config": {"dry_run": False, "confirm": True}}}}
    sensors = {s.name for s in schedules.SENSORS}
    assert sensors == set(SENSORS)
    assert defs.resolve_sensor_def("wal_archive_sensor").required_resource_keys == {"alerts", "postgres"}
    assert defs.resolve_sensor_def("replication_sensor").required_resource_keys == {"alerts", "postgres"}
    assert defs.resolve_sensor_def("stale_backup_sensor").minimum_interval_seconds == 3600
    assert defs.resolve_sensor_def("run_failure_alert_sensor").required_resource_keys == {"alerts"}


def test_schedules_and_sensors_link_their_runbook_section_as_a_url(monkeypatch):
    """The UI shows a clickable `runbook` link: a schedule's is its job's section, a sensor's its own;
    under RUNBOOK_URL when it is set (read when the code location loads)."""
    from assets import _runbook

    monkeypatch.setenv("RUNBOOK_URL", "https://git.example/ops/docs/runbook.md")
    _runbook._base.cache_clear()
    try:
        module = _reload()
        urls = {s.name: s.metadata["runbook"].url for s in [*module.SCHEDULES, *module.SENSORS]}
    finally:
        monkeypatch.undo()
        _runbook._base.cache_clear()
        _reload()
    base = "https://git.example/ops/docs/runbook.md#"
    assert urls == {**{name: base + job for name, (_, job) in EXPECTED_SCHEDULES.items()},
                    **{name: base + name for name in SENSORS}}


def test_outside_production_everything_is_stopped(environment):
    module = environment("development")
    assert {s.name: s.default_status for s in module.SCHEDULES} == {
        name: dg.DefaultScheduleStatus.STOPPED for name in EXPECTED_SCHEDULES}
    assert {s.name: s.default_status for s in module.SENSORS} == {
        name: dg.DefaultSensorStatus.STOPPED for name in SENSORS}


def test_production_runs_the_backup_schedules_and_alert_sensors(environment):
    module = environment("production")
    status = {s.name: s.default_status for s in module.SCHEDULES}
    assert status == {"health_schedule": dg.DefaultScheduleStatus.STOPPED,  # unchanged: polling is opt-in
                      "nightly_postgres_backup_schedule": dg.DefaultScheduleStatus.RUNNING,
                      "weekly_postgres_restore_check_schedule": dg.DefaultScheduleStatus.RUNNING,
                      "daily_postgres_backup_prune_schedule": dg.DefaultScheduleStatus.RUNNING,
                      "search_sync_schedule": dg.DefaultScheduleStatus.RUNNING,
                      "search_lifecycle_schedule": dg.DefaultScheduleStatus.RUNNING,
                      "system_metrics_schedule": dg.DefaultScheduleStatus.RUNNING,
                      "daily_search_snapshot_schedule": dg.DefaultScheduleStatus.RUNNING,
                      "retention_schedule": dg.DefaultScheduleStatus.RUNNING,
                      # no WAL archive: a base backup could only fail
                      "nightly_base_backup_schedule": dg.DefaultScheduleStatus.STOPPED,
                      "weekly_recovery_check_schedule": dg.DefaultScheduleStatus.STOPPED,
                      # no bucket: every push could only fail
                      "offsite_push_schedule": dg.DefaultScheduleStatus.STOPPED,
                      # quiet without a standby: observing one costs one query
                      "replication_schedule": dg.DefaultScheduleStatus.RUNNING}
    assert {s.name: s.default_status for s in module.SENSORS} == {
        name: dg.DefaultSensorStatus.RUNNING for name in SENSORS}


def test_production_with_the_wal_archive_runs_the_base_backups_and_recovery_checks(environment, monkeypatch):
    monkeypatch.setenv("WAL_ARCHIVE_MODE", "async")
    module = environment("production")
    status = {s.name: s.default_status for s in module.SCHEDULES}
    assert status["nightly_base_backup_schedule"] == status["weekly_recovery_check_schedule"] == \
        dg.DefaultScheduleStatus.RUNNING


def test_production_with_a_bucket_copies_off_the_machine(environment, monkeypatch):
    monkeypatch.setenv("OFFSITE_BUCKET", "prod-backups")
    module = environment("production")
    status = {s.name: s.default_status for s in module.SCHEDULES}
    assert status["offsite_push_schedule"] == dg.DefaultScheduleStatus.RUNNING
    assert {s.name: s.default_status for s in environment("development").SCHEDULES}["offsite_push_schedule"] == \
        dg.DefaultScheduleStatus.STOPPED


def test_system_metrics_runs_sample_at_their_tick_time():
    """A retried run keeps its tags, so it samples under the same time and rewrites the same documents."""
    from datetime import UTC, datetime

    from assets.metrics import SAMPLED_AT_TAG, sampled_at_of

    tick = datetime(2026, 5, 1, 10, 35, tzinfo=UTC)
    request = schedules.metrics.system_metrics_schedule(dg.build_schedule_context(scheduled_execution_time=tick))
    assert request.tags[SAMPLED_AT_TAG] == "2026-05-01T10:35:00+00:00"
    assert sampled_at_of(request.tags) == tick and sampled_at_of({}) is None
