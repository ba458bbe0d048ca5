"""The run tags the run queue limits (dagster.yaml: run_coordinator.config.tag_concurrency_limits).

Dagster's QueuedRunCoordinator counts, per limited tag, the runs in progress that carry it, and keeps
a queued run waiting while any tag it carries has reached its limit. Each job below carries the tags
of what it must not share; dagster.yaml limits each of these keys to 1 (tests/test_run_queue.py
checks that both sides agree). The limits hold for runs that go through the queue (the UI,
schedules, sensors, backfills); `orchestrator-data run` executes in its own process, outside the
queue, and there the advisory locks in the code (migrations, one sync per index) still hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg

from orchestrator_data.search.sources import SYNCED

PREFIX = "orchestrator-data"

# Jobs that migrate PostgreSQL (postgres_schema, or the reset's own migrate to head): one at a time.
# The advisory lock would make a second one wait inside its run anyway; the queue keeps it from
# holding a worker and a run slot while it waits.
MIGRATION_KEY = f"{PREFIX}/postgres-migration"

# Jobs that write an index's documents through the sync, or drop and recreate the index: one per
# index at a time (the sync's per-index advisory lock fails the second one with SyncBusy). One key
# PER INDEX, not one key with the index as its value: a run carries one value per key, so a job that
# syncs several indices could name only one of them; with a key each, a job carries exactly the
# indices it touches and waits only for runs touching one of those.
SYNC_KEY_PREFIX = f"{PREFIX}/sync-"

# Jobs that must not run while reset_job drops and recreates the schema: pg_dump of a schema being
# dropped, or a restore check reading the live erasure ledger mid-reset (it would re-apply an empty
# ledger and pass). One shared key limited to 1 makes them exclusive among themselves too: two
# backups, or a backup and a restore check, never run at once either — wanted: each is a full read
# of the database, and they share BACKUP_DIR and its keep-newest pruning.
LIVE_SCHEMA_KEY = f"{PREFIX}/live-schema"

# search_full_load_job (monthly partitions, one run each, run in parallel on workers): its runs carry
# this key and dagster.yaml does NOT limit it. A tag limit cannot say "never beside a reset" without
# also saying "never beside each other" (a run is blocked by the count of in-progress runs carrying
# a key it carries, whoever they are), so the reset side is guarded in the run: reset_job refuses
# while a run carrying this key is in progress (jobs/reset.py); the full load should check
# runs_in_progress(instance, RESET_KEY) before it writes.
SEARCH_FULL_LOAD_KEY = f"{PREFIX}/search-full-load"
RESET_KEY = f"{PREFIX}/reset"

TAG_VALUE = "1"  # only the keys matter to the limits


def sync_key(index: str) -> str:
    if index not in SYNCED:
        raise ValueError(f"{index!r} is not a synced search index; the synced ones are: {', '.join(SYNCED)}")
    return f"{SYNC_KEY_PREFIX}{index}"


def sync_tags(indices: Iterable[str]) -> dict[str, str]:
    return {sync_key(index): TAG_VALUE for index in indices}


MIGRATION_TAGS = {MIGRATION_KEY: TAG_VALUE}
LIVE_SCHEMA_TAGS = {LIVE_SCHEMA_KEY: TAG_VALUE}
SEARCH_FULL_LOAD_TAGS = {SEARCH_FULL_LOAD_KEY: TAG_VALUE}
RESET_TAGS = {RESET_KEY: TAG_VALUE}


def tags(*parts: Mapping[str, str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for part in parts:
        merged |= part
    return merged


# every key dagster.yaml limits to one run at a time
LIMITED_KEYS = (MIGRATION_KEY, LIVE_SCHEMA_KEY, *(sync_key(index) for index in SYNCED))


def runs_in_progress(instance: dg.DagsterInstance, key: str) -> list[str]:
    """Ids of the runs queued-for-launch or running (not QUEUED: those wait) that carry `key`."""
    records = instance.get_run_records(dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]))
    return [record.dagster_run.run_id for record in records if key in record.dagster_run.tags]
