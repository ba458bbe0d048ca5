"""Schedules and sensors. Each one's default status is chosen on purpose (see DESIGN.md)."""

import dagster as dg

from jobs import health_job

# Off by default outside production: a developer's laptop should not poll on its own.
health_schedule = dg.ScheduleDefinition(
    name="health_schedule",
    job=health_job,
    cron_schedule="*/15 * * * *",
    description="Check every server of the data layer every 15 minutes.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

SCHEDULES = [health_schedule]
SENSORS: list = []

__all__ = ["SCHEDULES", "SENSORS", "health_schedule"]
