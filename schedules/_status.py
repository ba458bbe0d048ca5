"""Default status of the backup schedules and the alert sensors, decided once at load time.

RUNNING in production: there, a forgotten toggle in the UI would mean no nightly backup, no restore
test and silent failures — the things these exist to prevent. STOPPED elsewhere: a developer's
laptop or a test instance should not start dumping databases or posting alerts on its own
(and run_failure_sensor's default is STOPPED anyway; see DESIGN.md)."""

from __future__ import annotations

import dagster as dg

from orchestrator_data.settings import load_settings


def is_production() -> bool:
    return load_settings().is_production


def schedule_status() -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if is_production() else dg.DefaultScheduleStatus.STOPPED


def sensor_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if is_production() else dg.DefaultSensorStatus.STOPPED
