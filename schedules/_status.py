"""Default status of the backup schedules and the alert sensors, decided once at load time.

RUNNING in production: there, a forgotten toggle in the UI would mean no nightly backup, no restore
test and silent failures — the things these exist to prevent. STOPPED elsewhere: a developer's
laptop or a test instance should not start dumping databases or posting alerts on its own
(and run_failure_sensor's default is STOPPED anyway; see docs/architecture.md, pitfalls)."""

from __future__ import annotations

import dagster as dg

from collections.abc import Callable

from orchestrator_data.settings import Settings, SettingsError, load_settings, production_by_default


def schedule_status() -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if production_by_default() else dg.DefaultScheduleStatus.STOPPED


def schedule_status_if(needed: Callable[[Settings], bool]) -> dg.DefaultScheduleStatus:
    """`schedule_status()` where `needed(settings)` holds (what the schedule's job needs is configured),
    STOPPED otherwise, and with settings that do not load: without it every run could only fail."""
    try:
        configured = needed(load_settings())
    except SettingsError:
        configured = False
    return schedule_status() if configured else dg.DefaultScheduleStatus.STOPPED


def sensor_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if production_by_default() else dg.DefaultSensorStatus.STOPPED
