"""Daily search snapshots (with their restore check), and an alert when either promise goes stale."""

from datetime import UTC, datetime

import dagster as dg

from assets._runbook import runbook_metadata
from jobs import search_snapshot_job
from orchestrator_data.freshness import Freshness
from orchestrator_data.search import snapshot_checks, snapshots
from resources import ElasticsearchResource, PostgresResource
from schedules._stale import stale_copy_sensor
from schedules._status import schedule_status

# 03:00 UTC, after the 02:00 PostgreSQL backup: the two nightly copies do not compete for the disks.
daily_search_snapshot_schedule = dg.ScheduleDefinition(
    name="daily_search_snapshot_schedule",
    job=search_snapshot_job,
    metadata=runbook_metadata("search_snapshot_job"),
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    description="Snapshot the search indices every day at 03:00 UTC, prune to SEARCH_SNAPSHOT_KEEP, restore-check "
                "the new snapshot.",
    default_status=schedule_status(),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _snapshot_promises(resources: dict) -> list[Freshness]:
    now = utcnow()
    postgres: PostgresResource = resources["postgres"]
    elasticsearch: ElasticsearchResource = resources["elasticsearch"]
    repository, layout, settings = elasticsearch.snapshot_repository_of(), elasticsearch.layout(), elasticsearch.settings
    try:
        return [
            snapshots.snapshot_freshness(elasticsearch.client, repository, layout,
                                         settings.search_snapshot_max_age_hours, now),
            snapshot_checks.restore_check_freshness(postgres.engine, repository, layout,
                                              24 * settings.search_restore_check_max_age_days, now),
        ]
    except snapshots.SearchError as exc:
        # the cluster cannot be asked: say so on the tick (a failed tick shows in the UI) rather than alert
        raise dg.Failure(description=str(exc)) from None


stale_search_snapshot_sensor = stale_copy_sensor(
    "stale_search_snapshot_sensor",
    "Alerts (audit log, Redis, webhook) when the newest successful search snapshot is older than "
    "SEARCH_SNAPSHOT_MAX_AGE_HOURS or the newest restore-checked one older than "
    "SEARCH_RESTORE_CHECK_MAX_AGE_DAYS (or there is none); once per stale snapshot and promise.",
    {"postgres", "elasticsearch"}, _snapshot_promises,
    lambda freshness: f"search {freshness.promise} snapshot is stale")
