"""The full load of the executions and audit_logs indices, one month at a time.

A month (of `executions.created_at`, `audit_logs.occurred_at`) is one partition: a backfill runs
each on a worker of its own, and any one can be run again alone. Open at both ends: the first
partition also loads every older row, the last (the current month) every later one, so the
partitions together cover every row whatever its date.

* One REPEATABLE READ snapshot per partition, rows streamed from a server-side cursor and written
  with the sync's own code (loading.load_batches, write_changes): external versions from the rows, so a
  re-run or a sync writing the same document never regresses or duplicates it, and a document that
  already lives in an older backing index (after a rollover) is rewritten there.
* The index's lock, shared: partitions run side by side, never while a sync, reindex, rollover or
  snapshot holds it exclusively (they write the index or move its aliases).
* A load never moves the incremental watermark. Each finished load is recorded
  (search_partition_loads, with its snapshot's xmin): the first incremental sync of a never-synced
  index whose loads cover every row starts from the lowest xmin (watermarks.watermark_from_loads)
  instead of loading everything again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.errors import BadInput
from orchestrator_data.postgres import models
from orchestrator_data.search.bulk import backing_indices
from orchestrator_data.search.errors import SearchError, elasticsearch_errors
from orchestrator_data.search.indices import Layout, definition
from orchestrator_data.search.locks import index_lock
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import SOURCES, Source, batched, row_change, source_of, stream_rows
from orchestrator_data.search.loading import load_batches

# How long a partition waits for a sync, rollover or snapshot to release the index (they take seconds
# to minutes); a reindex takes longer, and the partition then fails, to be run again.
LOCK_WAIT_S = 300.0
PARTITIONED = tuple(name for name, src in SOURCES.items() if src.partition_column)
MONTH = re.compile(r"^(\d{4})-(\d{2})(?:-01)?$")  # YYYY-MM (the CLI), or Dagster's YYYY-MM-01


class InvalidPartition(SearchError, BadInput):
    """A month or an index that has no partition: bad input."""


@dataclass(frozen=True)
class Partition:
    key: str                    # YYYY-MM
    start: datetime | None      # None: open (the first partition also loads every older row)
    end: datetime | None        # None: open (the last partition, the current month, every later row)


@dataclass
class PartitionReport:
    index: str
    partition: str
    start: datetime | None
    end: datetime | None
    snapshot_xmin: int
    rows_read: int = 0
    documents_written: int = 0
    already_current: int = 0   # Elasticsearch had this version or a newer one: a re-run, or a sync was first
    duration_s: float = 0.0
    written_to: dict[str, int] = field(default_factory=dict)  # backing index -> documents written there

    @property
    def documents_per_s(self) -> float:
        return self.documents_written / self.duration_s if self.duration_s else 0.0

    def as_dict(self) -> dict:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()} | {
            "documents_per_s": round(self.documents_per_s, 1)}


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def _next_month(moment: datetime) -> datetime:
    return _month_start(moment.year + moment.month // 12, moment.month % 12 + 1)


def partition(month: str, first_month: date, now: datetime | None = None) -> Partition:
    """The partition of `month` (YYYY-MM) when partitions run from `first_month` (SEARCH_PARTITIONS_START)
    to the current month (UTC). Raises InvalidPartition naming what is wrong."""
    found = MONTH.match(month.strip())
    if not found or not 1 <= int(found.group(2)) <= 12:
        raise InvalidPartition(f"month '{month}' is not a month: use YYYY-MM, e.g. 2024-03")
    start = _month_start(int(found.group(1)), int(found.group(2)))
    first = _month_start(first_month.year, first_month.month)
    now = now or datetime.now(UTC)
    current = _month_start(now.year, now.month)
    if first > current:
        raise InvalidPartition(f"SEARCH_PARTITIONS_START ({first_month}) is after the current month: no partition")
    if not first <= start <= current:
        raise InvalidPartition(f"month {start:%Y-%m} has no partition: they run from {first:%Y-%m} "
                               f"(SEARCH_PARTITIONS_START; older rows are in that first month's) to {current:%Y-%m} "
                               f"(later rows are in the current month's)")
    return Partition(f"{start:%Y-%m}", None if start == first else start, None if start == current else _next_month(start))


def partitioned_source(name: str) -> Source:
    """The index's source, if its full load runs by month; InvalidPartition otherwise."""
    src = source_of(name)  # UnknownIndex, or system_metrics: not synced
    if src.partition_column is None:
        raise InvalidPartition(f"index '{name}' is not loaded by month (only {', '.join(PARTITIONED)} are): "
                               f"`orchestrator-data search sync --full --index {name}` loads it in full")
    return src


def _partition_rows(src: Source, part: Partition) -> Callable[[sa.Connection], object]:
    conditions = ([f"q.{src.partition_column} >= :start"] if part.start else []) + \
                 ([f"q.{src.partition_column} < :end"] if part.end else [])
    statement = src.select + (f" WHERE {' AND '.join(conditions)}" if conditions else "")

    def read(conn: sa.Connection):
        for batch in batched(stream_rows(conn, statement, {"start": part.start, "end": part.end})):
            yield [row_change(row) for row in batch]
    return read


def load_partition(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str, part: Partition, *,
                   on_progress: Callable[[SyncReport], None] | None = None,
                   lock_wait_s: float = LOCK_WAIT_S) -> PartitionReport:
    """Load one month of `name` (executions or audit_logs) into its index, under the index's lock held
    shared, and record the load. Raises InvalidPartition, SyncBusy (the lock stayed taken), SyncError."""
    src = partitioned_source(name)
    alias = layout.read_alias(name)
    started = time.monotonic()
    with elasticsearch_errors(f"full load of {alias}, month {part.key}", consequence="nothing was recorded: run the "
                              "partition again (documents written so far are correct, versions from the rows)"), \
            index_lock(engine, alias, lock_wait_s, shared=True):
        backing, target = backing_indices(client, layout, name)
        report = SyncReport(name, "partition", None, 0,
                            mapping_version=layout.version_of(name, target) or definition(name).version)
        xmin = load_batches(engine, client, layout, src, _partition_rows(src, part), backing, target, report,
                            started, on_progress).xmin
        done = PartitionReport(name, part.key, part.start, part.end, xmin, report.rows_read, report.documents_written,
                               report.stale_skipped, time.monotonic() - started, dict(sorted(report.written_to.items())))
        _record(engine, alias, done)
    return done


def _record(engine: sa.Engine, alias: str, done: PartitionReport) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(models.search_partition_loads).values(
            index_name=alias, partition_key=done.partition, partition_start=done.start, partition_end=done.end,
            snapshot_xmin=done.snapshot_xmin, rows_read=done.rows_read, documents_written=done.documents_written,
            already_current=done.already_current, duration_s=done.duration_s))


def loads(engine: sa.Engine, alias: str) -> list[sa.Row]:
    """The recorded partition loads of an index, oldest first."""
    table = models.search_partition_loads
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table).where(table.c.index_name == alias).order_by(table.c.id)))

