"""Reading PostgreSQL in one snapshot and writing what it yields into Elasticsearch: the engine under
the sync, a rebuild and a full load's partitions.

Rows stream from a server-side cursor and are read one or two batches ahead on a thread of their own
while Elasticsearch writes, so memory stays bounded and neither side waits on the other."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.search.bulk import write_changes
from orchestrator_data.search.indices import Layout
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import (
    Change,
    RewriteFound,
    Snapshot,
    Source,
    all_changes,
    consistent_snapshot,
    rewrite_marks,
    window_changes,
)


def load_into(engine: sa.Engine, client: Elasticsearch, layout: Layout, src: Source, low: int | None,
              backing: list[str], target: str, report: SyncReport, started: float,
              on_progress: Callable[[SyncReport], None] | None = None, *, covered: str | None = None,
              before_writing: Callable[[], object] | None = None) -> Snapshot:
    """Write every row (low None) or every change from `low` on into `target`, in one snapshot; returns
    the snapshot, whose xmin is the watermark the writes make true once acknowledged. A window holding a
    REWRITE mark that the snapshot `covered` could not see raises RewriteFound before anything is written:
    its rows cannot be applied change by change. `before_writing`: called once, after the snapshot was
    taken and before the first document is written (the run's writer claim, history.py)."""
    def window(conn: sa.Connection) -> Iterator[list[Change]]:
        if marks := rewrite_marks(conn, src, low, covered):
            raise RewriteFound(src.index, marks)
        yield from window_changes(conn, src, low)

    read = (lambda conn: all_changes(conn, src)) if low is None else window
    return load_batches(engine, client, layout, src, read, backing, target, report, started, on_progress,
                        before_writing=before_writing)


def load_batches(engine: sa.Engine, client: Elasticsearch, layout: Layout, src: Source,
                 read: Callable[[sa.Connection], Iterator[list[Change]]], backing: list[str], target: str,
                 report: SyncReport, started: float,
                 on_progress: Callable[[SyncReport], None] | None = None, *,
                 before_writing: Callable[[], object] | None = None) -> Snapshot:
    """Write what `read(conn)` yields, read in one REPEATABLE READ snapshot; returns the snapshot.
    `before_writing` runs once before the first write (never, when there is nothing to write)."""
    with consistent_snapshot(engine) as (conn, snapshot):
        for changes in _read_ahead(read(conn)):
            if before_writing is not None and changes:
                before_writing()
                before_writing = None
            report.rows_read += len(changes)
            write_changes(client, layout, src.index, changes, report, backing, target)
            report.duration_s = time.monotonic() - started
            if on_progress:
                on_progress(report)
    return snapshot


_DONE = object()


def _read_ahead(batches: Iterator[list[Change]], depth: int = 2) -> Iterator[list[Change]]:
    """Read the next batches from PostgreSQL on a thread of its own while the caller waits on
    Elasticsearch; at most `depth` batches wait in between, so memory stays bounded. The thread alone
    uses the snapshot's connection; it stops at the next batch when the caller gives up."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        ready.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            ready.put(exc)

    reader = threading.Thread(target=produce, name="search-sync-reader", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue, then let it finish
            with suppress(queue.Empty):
                ready.get(timeout=0.1)
        reader.join()
