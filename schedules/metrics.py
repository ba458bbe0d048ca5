"""Every 5 minutes, the data layer's own figures into the system_metrics index."""

import dagster as dg

from assets._runbook import runbook_metadata
from assets.metrics import SAMPLED_AT_TAG
from jobs import system_metrics_job
from schedules._status import schedule_status


@dg.schedule(
    name="system_metrics_schedule",
    job=system_metrics_job,
    metadata=runbook_metadata("system_metrics_job"),
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=schedule_status(),   # RUNNING by default in production only
    description="Sample PostgreSQL, Redis and Elasticsearch into system_metrics every 5 minutes.",
)
def system_metrics_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # the tick's time is the sample's time: a retried run of the tick rewrites the same documents
    return dg.RunRequest(tags={SAMPLED_AT_TAG: context.scheduled_execution_time.isoformat()})
