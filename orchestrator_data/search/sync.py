"""PostgreSQL → Elasticsearch sync: full and incremental, losing nothing and never going back in time.

How it keeps each promise:

* **Late commits are not lost.** Every change to an audited table is an audit row carrying the id of
  the transaction that made it. A run opens one REPEATABLE READ snapshot and takes its xmin
  (`pg_snapshot_xmin(pg_current_snapshot())`): every transaction below it has ended, so its changes
  are final and visible. The run applies every change it can see from transactions at or above the
  watermark, then moves the watermark to xmin — never past a transaction still in flight. A
  transaction that started earlier but commits later has an id at or above that xmin, so a later run
  still reads its changes, however late it commits. (Polling `updated_at > last_value` loses exactly
  those rows.) Changes already visible above xmin are applied now and again next time: harmless,
  since versions make every write idempotent.
* **Never back in time.** Document id = primary key; every write carries an external version taken
  from the row (`row_version`, raised by a trigger on every UPDATE; for an execution, combined with
  its workflow's, whose name and engine type it carries). Elasticsearch refuses an older version, so a
  replayed, retried or reordered batch cannot regress a document.
* **Deletes arrive.** A soft-deleted row (deleted_at set) and a hard-deleted one (gone from the
  table, its DELETE in the audit trail) both delete the document.
* **The watermark moves only after Elasticsearch acknowledged every document** of the window; a
  failed document is retried with backoff and, if it still fails, fails the run with the watermark
  where it was. Re-running the window is harmless (versions).
* **Bounded memory**: rows stream from a server-side cursor in batches into the bulk API, read one
  or two batches ahead on a thread of its own while Elasticsearch writes.
* **One copy per document**: a document that already exists is rewritten in the backing index that
  holds it (found through the read alias), never through the write alias into a second one (bulk.py).
* **One sync per index at a time**: a PostgreSQL advisory lock per index, held exclusively; the
  partitions of a full load (full_load.py) hold it shared, so they run side by side but never while
  a sync, reindex, rollover or snapshot writes the index or moves its aliases (locks.py).

Its parts: sources.py (what each index is made of, read from PostgreSQL), watermarks.py (where each
index stands), bulk.py (writing into Elasticsearch), locks.py, errors.py. This module runs them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.replication.follow import run_again_if_cut_off
from orchestrator_data.replication.timeline import position_of
from orchestrator_data.search.bulk import backing_indices
from orchestrator_data.search.errors import elasticsearch_errors
from orchestrator_data.search.history import claim, histories_differ, next_writer, stamp
from orchestrator_data.search.indices import NAMES, IndexInit, Layout, definition, init_indices, write_index
from orchestrator_data.search.loading import load_into
from orchestrator_data.search.locks import index_lock
from orchestrator_data.search.rebuild import rebuild
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import SOURCES, SYNCED, RewriteFound, source_of
from orchestrator_data.search.watermarks import forget, load_state, save_state, watermark_from_loads

log = logging.getLogger(__name__)


def sync_index(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str, *, full: bool = False,
               on_progress: Callable[[SyncReport], None] | None = None) -> SyncReport:
    """Bring one index up to date: incrementally from its watermark, or by a rebuild (rebuild.py) that
    leaves it exactly equal to PostgreSQL — asked for (`full`), for a never-synced index, because the
    database and the index no longer share one history (a restore, a point-in-time recovery, a failover,
    an index restored from a snapshot: history.py), or because rows were rewritten behind the audit
    trail since the last rebuild (a REWRITE mark in the window).
    A never-synced index whose partitioned full load covers every row starts from the loads instead
    (watermark_from_loads). Raises SyncError (watermark unchanged), SyncBusy (SyncDeferred: a full load
    is running or incomplete), UnknownIndex.

    A sync is safe to repeat (versions; the watermark moves only after Elasticsearch acknowledged): one cut
    off by a failover runs again on the new primary, within the engine's reconnect budget (replication/follow.py)."""
    source_of(name)  # an unknown name is refused, never retried
    return run_again_if_cut_off(engine, lambda: _sync_index_once(engine, client, layout, name, full, on_progress),
                                f"sync of {layout.read_alias(name)}")


def _sync_index_once(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str, full: bool,
                     on_progress: Callable[[SyncReport], None] | None) -> SyncReport:
    src = source_of(name)
    alias = layout.read_alias(name)
    started = time.monotonic()
    with elasticsearch_errors(f"sync of {alias}"), index_lock(engine, alias):
        state = load_state(engine, alias)
        low = None if full else state.watermark if state is not None else watermark_from_loads(engine, src, alias)
        # no state yet, after a full load by month: the loads this database recorded are what the index holds
        differ = histories_differ(client, layout, name, state) if state is not None and low is not None else None
        if low is None:
            report = SyncReport(name, "full", None, 0)
            rebuild(engine, client, layout, name, report, started, on_progress)
        elif differ:
            log.warning("%s: %s; rebuilding it from PostgreSQL", alias, differ)
            report = SyncReport(name, "rebuild", low, 0, reason=differ)
            rebuild(engine, client, layout, name, report, started, on_progress)
        else:
            backing, target = backing_indices(client, layout, name)
            report = SyncReport(name, "incremental" if state is not None else "after_full_load", low, 0,
                                mapping_version=layout.version_of(name, target) or definition(name).version)
            # a run with a state claims a new writer before its first document (history.py); after a full
            # load by month there is no state row yet: the writer is stamped and recorded with it at the end
            claim_first = (lambda: claim(engine, client, alias, backing)) if state is not None else None
            try:
                loaded = load_into(engine, client, layout, src, low, backing, target, report, started, on_progress,
                                   covered=state.rebuilt_snapshot if state is not None else None,
                                   before_writing=claim_first)
            except RewriteFound as found:
                log.warning("%s; rebuilding it from PostgreSQL", found)
                report = SyncReport(name, "rebuild", low, 0, reason=str(found))
                rebuild(engine, client, layout, name, report, started, on_progress)
            else:
                report.watermark_to = loaded.xmin
                writer = None
                if state is None:
                    writer = next_writer(None)
                    stamp(client, backing, writer, position_of(engine))
                save_state(engine, alias, report, writer=writer)  # only now: every document was acknowledged
    report.duration_s = time.monotonic() - started
    log.info("%s sync of %s: %d written, %d deleted, watermark %s -> %s", report.mode, alias,
             report.documents_written, report.documents_deleted, report.watermark_from, report.watermark_to)
    return report


def sync(engine: sa.Engine, client: Elasticsearch, layout: Layout, names: Iterable[str] = SYNCED, *,
         full: bool = False, on_progress: Callable[[SyncReport], None] | None = None) -> list[SyncReport]:
    names = list(names)
    for name in names:
        source_of(name)  # refuse an unknown or unsynced name before any work
    reports = [sync_index(engine, client, layout, name, full=full, on_progress=on_progress) for name in names]
    client.indices.refresh(index=",".join(layout.read_alias(n) for n in names))
    return reports


def sync_existing(engine: sa.Engine, client: Elasticsearch, layout: Layout,
                  on_progress: Callable[[SyncReport], None] | None = None) -> list[SyncReport]:
    """Sync every synced index that exists (none created here). After rows were rewritten behind the audit
    trail (a seed), the marks it left make each of them rebuild, so they end equal to PostgreSQL."""
    names = [name for name in SYNCED if write_index(client, layout, name) is not None]
    return sync(engine, client, layout, names, on_progress=on_progress) if names else []


def create_indices(engine: sa.Engine | None, client: Elasticsearch, layout: Layout, names: Iterable[str] = NAMES, *,
                   shards: int = 1, replicas: int = 0) -> list[IndexInit]:
    """init_indices, and for an index created just now forget any watermark a previous copy left in
    PostgreSQL, so that its first sync loads everything instead of only what changed since."""
    results = init_indices(client, layout, tuple(names), shards=shards, replicas=replicas)
    if engine is not None:
        for result in results:
            if result.created and result.name in SOURCES:
                forget(engine, result.read_alias)
    return results
