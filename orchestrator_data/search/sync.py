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
* **Bounded memory**: rows stream from a server-side cursor in batches into the bulk API.
* **One copy per document**: a document that already exists is rewritten in the backing index that
  holds it (found through the read alias), never through the write alias into a second one.
* **One sync per index at a time**: a PostgreSQL advisory lock per index, held exclusively; the
  partitions of a full load (full_load.py) hold it shared, so they run side by side but never while
  a sync, reindex, rollover or snapshot writes the index or moves its aliases.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime

import sqlalchemy as sa
from elasticsearch import ApiError, Elasticsearch, TransportError, helpers
from sqlalchemy.dialects import postgresql
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from orchestrator_data.postgres import models
from orchestrator_data.search.indices import (
    NAMES,
    IndexInit,
    Layout,
    SearchError,
    UnknownIndex,
    definition,
    init_indices,
    write_index,
)

log = logging.getLogger(__name__)

BATCH = 1000
# A hard-deleted row can never come back (its id was a random UUID): its delete outranks any write.
DELETED_FOREVER = 2**62
# An execution's version: its own row_version in the high bits, its workflow's in the low 31.
PARENT_BITS = 31
RETRIES = 4


class SyncError(SearchError):
    """The sync could not finish; the watermark stayed where it was."""


class SyncBusy(SyncError):
    pass


class SyncDeferred(SyncBusy):
    """The incremental sync stands aside for a partitioned full load (running, or begun and not yet
    covering every row): the Dagster asset skips instead of failing."""


@dataclass(frozen=True)
class Source:
    """How one index is fed from PostgreSQL."""

    index: str
    table: str                  # the table whose primary key is the document id
    rows: str                   # the document's columns + FROM, plus id, organization_id, version, deleted
    tables: tuple[str, ...]     # audited tables whose changes touch this index's documents
    children: dict[str, str] = field(default_factory=dict)  # parent table -> ids of affected documents (:ids)
    append_only: bool = False   # audit_logs: the window's rows are the documents themselves
    id_type: str = "uuid"       # the primary key's SQL type (audit_logs: bigint)
    partition_column: str | None = None  # the time the full load is partitioned by (by month); None: not

    @property
    def select(self) -> str:
        """id, organization_id, version, deleted and the document as JSON text. PostgreSQL renders the JSON
        (dates ISO 8601, nulls left out): the bulk request sends that text as it is, so no Python object
        is built per column, which is where a sync spends its time."""
        return (f"SELECT q.id, q.organization_id, q.version, q.deleted, "
                f"jsonb_strip_nulls(to_jsonb(q) - 'version' - 'deleted')::text AS document FROM ({self.rows}) q")


SOURCES: dict[str, Source] = {
    "workflows": Source(
        "workflows", "workflows",
        "SELECT w.id, w.organization_id, w.owner_id, w.name, w.description, w.engine_type, w.status, w.tags, "
        "w.current_version, w.created_at, w.updated_at, w.deleted_at IS NOT NULL AS deleted, "
        "w.row_version AS version FROM workflows w",
        ("workflows",)),
    "executions": Source(
        "executions", "executions",
        "SELECT e.id, e.organization_id, e.workflow_id, w.name AS workflow_name, w.engine_type, e.workflow_version, "
        "e.triggered_by, e.trigger, e.status, e.created_at, e.started_at, e.finished_at, e.duration_ms, "
        "e.prompt_tokens, e.completion_tokens, e.cost_usd, e.error, false AS deleted, "
        f"e.row_version * {2**PARENT_BITS}::bigint + w.row_version AS version "
        "FROM executions e JOIN workflows w ON w.id = e.workflow_id",
        ("executions", "workflows"),
        children={"workflows": "SELECT e.id FROM executions e WHERE e.workflow_id = ANY(CAST(:ids AS uuid[]))"},
        partition_column="created_at"),
    "marketplace": Source(
        "marketplace", "marketplace_items",
        "SELECT m.id, m.organization_id, m.workflow_id, m.name, m.summary, m.description, m.category, m.engine_type, "
        "m.pricing_model, m.price_cents, m.currency, m.rating, m.rating_count, m.downloads, m.status, m.tags, "
        "m.published_at, m.created_at, m.updated_at, m.deleted_at IS NOT NULL AS deleted, "
        "m.row_version AS version FROM marketplace_items m",
        ("marketplace_items",)),
    "audit_logs": Source(
        "audit_logs", "audit_logs",
        "SELECT a.id, a.organization_id, a.actor_id, a.actor_role, a.action, a.table_name, a.record_id, "
        "a.transaction_id, a.occurred_at, false AS deleted, a.id AS version FROM audit_logs a",
        (), append_only=True, id_type="bigint", partition_column="occurred_at"),
}
SYNCED = tuple(SOURCES)


def source(name: str) -> Source:
    if name not in SOURCES:
        if name in ("system_metrics",):
            raise SyncError(f"index '{name}' is not synced from PostgreSQL (its documents come from the metrics asset)")
        raise UnknownIndex(name)
    return SOURCES[name]


@dataclass
class SyncReport:
    index: str
    mode: str                       # "full" | "incremental" | "after_full_load" | "reindex" | "repair" | "partition"
    watermark_from: int | None
    watermark_to: int
    rows_read: int = 0
    documents_written: int = 0
    documents_deleted: int = 0
    stale_skipped: int = 0          # Elasticsearch already had a newer version
    retried: int = 0
    duration_s: float = 0.0
    mapping_version: int = 0
    written_to: dict[str, int] = field(default_factory=dict)  # backing index -> documents written there

    @property
    def documents_per_s(self) -> float:
        return (self.documents_written + self.documents_deleted) / self.duration_s if self.duration_s else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"documents_per_s": round(self.documents_per_s, 1)}


@dataclass
class Lag:
    index: str
    watermark: int | None
    synced_at: datetime | None
    full_synced_at: datetime | None
    rows_behind: int                # changes (audit rows) at or after the watermark
    seconds_behind: float | None    # age of the oldest change not yet applied (0: none)
    mapping_version: int | None

    def as_dict(self) -> dict:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


# -- documents ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    id: str
    version: int
    document: str | dict | None     # JSON text as PostgreSQL rendered it (or a dict); None: delete


def row_change(row: sa.RowMapping) -> Change:
    return Change(str(row["id"]), int(row["version"]), None if row["deleted"] else row["document"])


# -- PostgreSQL side --------------------------------------------------------------------------------
@contextmanager
def _snapshot(engine: sa.Engine) -> Iterator[tuple[sa.Connection, int]]:
    """A REPEATABLE READ, read-only transaction and its xmin: every transaction below it has ended."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            xmin = conn.execute(sa.text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")).scalar_one()
            yield conn, xmin


def _lock_key(alias: str) -> int:
    return int.from_bytes(hashlib.sha256(f"orchestrator-data search sync {alias}".encode()).digest()[:8],
                          "big", signed=True)


@contextmanager
def sync_lock(engine: sa.Engine, alias: str, wait_s: float = 0.0, *, shared: bool = False) -> Iterator[None]:
    """The index's lock: held exclusively by whatever writes it or moves its aliases (sync, reindex,
    rollover, snapshot), shared by the partitions of a full load (they write disjoint rows, so they
    may run together, but never while the write index or the aliases move). Waits up to `wait_s` for
    it, then raises SyncBusy — SyncDeferred when an exclusive taker finds a full load holding it."""
    with sync_locks(engine, [alias], wait_s, shared=shared):
        yield


def _full_loads_holding(conn: sa.Connection, key: int) -> int:
    """How many sessions hold `key` shared (partitions of a full load). A bigint advisory key shows in
    pg_locks as classid (high 32 bits) and objid (low 32 bits), objsubid 1."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return conn.execute(sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid) AND objsubid = 1"),
        {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF}).scalar_one()


@contextmanager
def sync_locks(engine: sa.Engine, aliases: list[str], wait_s: float = 0.0, *, shared: bool = False) -> Iterator[None]:
    """Several indices' locks at once, on one connection (a snapshot takes all five). All or none:
    a try that finds one taken releases the others before waiting, so two takers never deadlock."""
    deadline = time.monotonic() + wait_s
    keys = [_lock_key(alias) for alias in aliases]
    take, free = (("pg_try_advisory_lock_shared", "pg_advisory_unlock_shared") if shared
                  else ("pg_try_advisory_lock", "pg_advisory_unlock"))
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")

        def release(held: list[int]) -> None:
            for key in reversed(held):
                conn.execute(sa.text(f"SELECT {free}(:k)"), {"k": key})

        while True:
            held = []
            for alias, key in zip(aliases, keys, strict=True):
                if not conn.execute(sa.text(f"SELECT {take}(:k)"), {"k": key}).scalar_one():
                    release(held)
                    busy, busy_key = alias, key
                    break
                held.append(key)
            else:
                break
            if time.monotonic() >= deadline:
                if shared:
                    raise SyncBusy(f"a sync, reindex, rollover or snapshot of {busy} holds its lock (waited "
                                   f"{wait_s:.0f} s); the partition loaded nothing: run it again")
                if loads := _full_loads_holding(conn, busy_key):
                    raise SyncDeferred(f"a full load of {busy} is running ({loads} partition(s) at work); "
                                       f"the incremental sync waits for it")
                raise SyncBusy(f"another sync, reindex or lifecycle step of {busy} is running")
            time.sleep(0.2)
        try:
            yield
        finally:
            release(held)


def load_state(engine: sa.Engine, alias: str) -> sa.Row | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(models.search_sync_state).where(
            models.search_sync_state.c.index_name == alias)).first()


def save_state(engine: sa.Engine, alias: str, report: SyncReport) -> None:
    table = models.search_sync_state
    values = {"index_name": alias, "watermark": report.watermark_to, "mapping_version": report.mapping_version,
              "synced_at": sa.func.now(), "documents_written": report.documents_written,
              "documents_deleted": report.documents_deleted}
    if report.mode in ("full", "reindex", "after_full_load"):
        values["full_synced_at"] = sa.func.now()
    statement = postgresql.insert(table).values(**values)
    updates = {k: statement.excluded[k] for k in values if k != "index_name"}
    updates["watermark"] = sa.func.greatest(table.c.watermark, statement.excluded.watermark)  # never backwards
    updates["documents_written"] = table.c.documents_written + statement.excluded.documents_written
    updates["documents_deleted"] = table.c.documents_deleted + statement.excluded.documents_deleted
    with engine.begin() as conn:
        conn.execute(statement.on_conflict_do_update(index_elements=[table.c.index_name], set_=updates))


def _stream(conn: sa.Connection, statement: str, params: dict | None = None) -> Iterator[sa.RowMapping]:
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(sa.text(statement), params or {})
    for row in result.mappings():
        yield row


def batched(items: Iterable, size: int = BATCH) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _changed_ids(conn: sa.Connection, src: Source, low: int) -> Iterator[str]:
    """Ids of this index's documents touched by the visible transactions from `low` on: rows of its own
    table (deleted ones included: they are looked up and found missing) and children of changed parents."""
    changed = _stream(conn, "SELECT DISTINCT table_name, record_id FROM audit_logs WHERE transaction_id >= :low "
                            "AND table_name = ANY(:tables) AND action <> 'ALERT'",
                      {"low": low, "tables": list(src.tables)})
    parents: dict[str, list[str]] = {}
    seen: set[str] = set()
    for row in changed:
        if row["table_name"] == src.table:
            if row["record_id"] not in seen:
                seen.add(row["record_id"])
                yield row["record_id"]
        else:
            parents.setdefault(row["table_name"], []).append(row["record_id"])
    for table, ids in parents.items():
        for batch in batched(ids, BATCH):
            for child in _stream(conn, src.children[table], {"ids": batch}):
                key = str(child["id"])
                if key not in seen:
                    seen.add(key)
                    yield key


def changes_for(conn: sa.Connection, src: Source, ids: list[str]) -> list[Change]:
    """The current state of each of `ids` (document ids, as text): its document, or a delete."""
    rows = conn.execute(sa.text(f"{src.select} WHERE q.id = ANY(CAST(:ids AS {src.id_type}[]))"),
                        {"ids": ids}).mappings()
    changes = [row_change(row) for row in rows]
    found = {c.id for c in changes}
    # gone from the table (a hard delete, its DELETE in the audit trail): delete, outranking any write
    changes += [Change(i, DELETED_FOREVER, None) for i in ids if i not in found]
    return changes


def _window_changes(conn: sa.Connection, src: Source, low: int) -> Iterator[list[Change]]:
    if src.append_only:
        rows = _stream(conn, f"{src.select} WHERE q.transaction_id >= :low", {"low": low})
        for batch in batched(rows, BATCH):
            yield [row_change(row) for row in batch]
        return
    for ids in batched(_changed_ids(conn, src, low), BATCH):
        yield changes_for(conn, src, ids)


def _all_changes(conn: sa.Connection, src: Source) -> Iterator[list[Change]]:
    for batch in batched(_stream(conn, src.select), BATCH):
        yield [row_change(row) for row in batch]


# -- Elasticsearch side -----------------------------------------------------------------------------
class _Retryable(Exception):
    pass


def _locate(client: Elasticsearch, layout: Layout, name: str, ids: list[str], backing: list[str]) -> dict[str, str]:
    """The backing index holding each of `ids` that exists already."""
    if len(backing) <= 1:  # one backing index: wherever a document is, it is there
        return {}
    found = client.search(index=layout.read_alias(name), query={"ids": {"values": ids}}, size=len(ids),
                          source=False, request_cache=False)
    return {hit["_id"]: hit["_index"] for hit in found["hits"]["hits"]}


def _actions(changes: list[Change], located: dict[str, str], target: str, missing: frozenset[str]) -> list[dict]:
    actions = []
    for change in changes:
        where = located.get(change.id, target)
        if change.id in missing and change.document is not None:
            # put back a document someone deleted by hand: its tombstone may carry a version above the
            # row's, so it is created unversioned (the next versioned write still supersedes it)
            actions.append({"_op_type": "create", "_index": where, "_id": change.id, "_source": change.document})
        elif change.document is None:
            actions.append({"_op_type": "delete", "_index": where, "_id": change.id, "version": change.version,
                            "version_type": "external"})
        else:
            actions.append({"_op_type": "index", "_index": where, "_id": change.id, "version": change.version,
                            "version_type": "external", "_source": change.document})
    return actions


def write_changes(client: Elasticsearch, layout: Layout, name: str, changes: list[Change], report: SyncReport,
                  backing: list[str], target: str, missing: frozenset[str] = frozenset()) -> None:
    """Write one batch; returns once Elasticsearch acknowledged every document (or raises). `missing`:
    ids known to be absent from the index (repair), written without a version."""
    pending = _actions(changes, _locate(client, layout, name, [c.id for c in changes], backing), target, missing)
    attempt = 0
    for attempt_ctx in Retrying(stop=stop_after_attempt(RETRIES), wait=wait_exponential(multiplier=0.2, max=5),
                                retry=retry_if_exception_type(_Retryable), reraise=True):
        with attempt_ctx:
            attempt += 1
            failed = []
            for ok, item in helpers.streaming_bulk(client, pending, chunk_size=BATCH, raise_on_error=False,
                                                   raise_on_exception=False, max_retries=2):
                op, result = next(iter(item.items()))
                status = result.get("status", 0)
                error = (result.get("error") or {}).get("type", "")
                if ok:
                    if op == "delete":
                        report.documents_deleted += 1
                    else:
                        report.documents_written += 1
                        report.written_to[result["_index"]] = report.written_to.get(result["_index"], 0) + 1
                elif status == 409 and error == "version_conflict_engine_exception":
                    report.stale_skipped += 1      # already at this version or newer: nothing to do
                elif status == 404 and op == "delete":
                    report.documents_deleted += 1  # not there: already deleted
                else:
                    failed.append((result.get("_id"), status, error))
            if failed:
                ids = {f[0] for f in failed}
                pending = [a for a in pending if a["_id"] in ids]
                report.retried += len(pending)
                if attempt >= RETRIES:
                    shown = "; ".join(f"{i}: {s} {e}" for i, s, e in failed[:5])
                    raise SyncError(f"{len(failed)} document(s) of {layout.read_alias(name)} were not written "
                                    f"after {RETRIES} attempts (first: {shown}); the watermark stays where it was")
                raise _Retryable()


def backing_indices(client: Elasticsearch, layout: Layout, name: str) -> tuple[list[str], str]:
    target = write_index(client, layout, name)
    if target is None:
        raise SyncError(f"index {layout.read_alias(name)} does not exist: run `orchestrator-data search init`")
    backing = sorted(client.indices.get_alias(name=layout.read_alias(name)))
    return backing, target


# -- the sync ---------------------------------------------------------------------------------------
def sync_index(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str, *, full: bool = False,
               on_progress: Callable[[SyncReport], None] | None = None) -> SyncReport:
    """Bring one index up to date: incrementally from its watermark, or in full (also when it has never
    been synced). A never-synced index whose partitioned full load covers every row starts from the
    loads instead (watermark_from_loads). Raises SyncError (watermark unchanged), SyncBusy (SyncDeferred:
    a full load is running or incomplete), UnknownIndex."""
    src = source(name)
    alias = layout.read_alias(name)
    started = time.monotonic()
    with elasticsearch_errors(f"sync of {alias}"), sync_lock(engine, alias):
        state = load_state(engine, alias)
        low = None if full else state.watermark if state is not None else watermark_from_loads(engine, src, alias)
        mode = "full" if low is None else "incremental" if state is not None else "after_full_load"
        backing, target = backing_indices(client, layout, name)
        report = SyncReport(name, mode, low, 0,
                            mapping_version=layout.version_of(name, target) or definition(name).version)
        report.watermark_to = load_into(engine, client, layout, src, report.watermark_from, backing, target, report,
                                    started, on_progress)
        save_state(engine, alias, report)  # only now: every document of the window was acknowledged
    report.duration_s = time.monotonic() - started
    log.info("%s sync of %s: %d written, %d deleted, watermark %s -> %s", mode, alias, report.documents_written,
             report.documents_deleted, report.watermark_from, report.watermark_to)
    return report


@contextmanager
def elasticsearch_errors(what: str, error: type[SearchError] = SyncError,
                         consequence: str = "the watermark stays where it was") -> Iterator[None]:
    """An Elasticsearch error inside the block becomes `error` with one printable line."""
    try:
        yield
    except (ApiError, TransportError) as exc:
        reason = str(getattr(exc, "message", None) or exc)[:300]
        raise error(f"{what} failed: Elasticsearch: {type(exc).__name__}: {reason}"
                    + (f"; {consequence}" if consequence else "")) from exc


def load_into(engine: sa.Engine, client: Elasticsearch, layout: Layout, src: Source, low: int | None, backing: list[str],
          target: str, report: SyncReport, started: float,
          on_progress: Callable[[SyncReport], None] | None = None) -> int:
    """Write every row (low None) or every change from `low` on into `target`, in one snapshot; returns
    the snapshot's xmin, the watermark the writes make true once acknowledged."""
    read = (lambda conn: _all_changes(conn, src)) if low is None else (lambda conn: _window_changes(conn, src, low))
    return load_batches(engine, client, layout, src, read, backing, target, report, started, on_progress)


def load_batches(engine: sa.Engine, client: Elasticsearch, layout: Layout, src: Source,
                 read: Callable[[sa.Connection], Iterator[list[Change]]], backing: list[str], target: str,
                 report: SyncReport, started: float, on_progress: Callable[[SyncReport], None] | None = None) -> int:
    """Write what `read(conn)` yields, read in one REPEATABLE READ snapshot; returns the snapshot's xmin."""
    with _snapshot(engine) as (conn, xmin):
        for changes in _read_ahead(read(conn)):
            report.rows_read += len(changes)
            write_changes(client, layout, src.index, changes, report, backing, target)
            report.duration_s = time.monotonic() - started
            if on_progress:
                on_progress(report)
    return xmin


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


def sync(engine: sa.Engine, client: Elasticsearch, layout: Layout, names: Iterable[str] = SYNCED, *,
         full: bool = False, on_progress: Callable[[SyncReport], None] | None = None) -> list[SyncReport]:
    names = list(names)
    for name in names:
        source(name)  # refuse an unknown or unsynced name before any work
    reports = [sync_index(engine, client, layout, name, full=full, on_progress=on_progress) for name in names]
    client.indices.refresh(index=",".join(layout.read_alias(n) for n in names))
    return reports


def lag(engine: sa.Engine, layout: Layout, name: str) -> Lag:
    """How far Elasticsearch is behind PostgreSQL for one index: changes not yet applied and the age of
    the oldest. Never synced: every row of the table is behind."""
    src = source(name)
    state = load_state(engine, layout.read_alias(name))
    with engine.connect() as conn:
        if state is None:
            rows = conn.execute(sa.text(f"SELECT count(*) FROM {src.table}")).scalar_one()
            return Lag(name, None, None, None, rows, None, None)
        where = "transaction_id >= :wm" + ("" if src.append_only else " AND table_name = ANY(:tables)")
        rows, oldest, now = conn.execute(sa.text(
            f"SELECT count(*), min(occurred_at), now() FROM audit_logs WHERE {where}"),
            {"wm": state.watermark, "tables": list(src.tables)}).one()
    seconds = (now - oldest).total_seconds() if oldest is not None else 0.0
    return Lag(name, state.watermark, state.synced_at, state.full_synced_at, rows, max(seconds, 0.0),
               state.mapping_version)


def postgres_rows(engine: sa.Engine, name: str) -> int:
    """The rows that should be documents of `name` (soft-deleted ones excluded)."""
    src = source(name)
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM ({src.select}) s WHERE NOT s.deleted")).scalar_one()




def forget(engine: sa.Engine, alias: str) -> None:
    """Drop an index's watermark and its partition loads: its next sync is a full one."""
    with engine.begin() as conn:
        conn.execute(sa.delete(models.search_sync_state).where(models.search_sync_state.c.index_name == alias))
        conn.execute(sa.delete(models.search_partition_loads).where(
            models.search_partition_loads.c.index_name == alias))


def watermark_from_loads(engine: sa.Engine, src: Source, alias: str) -> int | None:
    """Where the first incremental sync of a never-synced index starts when its partitioned full load
    covers every row of the table: the lowest snapshot xmin among the loads. Every transaction below
    it had ended before each partition's snapshot, so each partition saw those rows; whatever a
    transaction at or above it did is in the audit trail from there on. None: no load at all (load in
    full). Raises SyncDeferred when loads exist but rows of some months have none (the full load is
    still under way, or was left unfinished: its message says what to run)."""
    loads = models.search_partition_loads
    if src.partition_column is None:
        return None
    with engine.connect() as conn:
        found = conn.execute(sa.select(loads.c.partition_start, loads.c.partition_end, loads.c.snapshot_xmin)
                             .where(loads.c.index_name == alias)).all()
        if not found:
            return None
        uncovered = []
        for low, high in _gaps([(row.partition_start, row.partition_end) for row in found]):
            bounds = {"low": low, "high": high}
            where = " AND ".join([f"{src.partition_column} >= :low"] * (low is not None)
                                 + [f"{src.partition_column} < :high"] * (high is not None))
            oldest, newest = conn.execute(sa.text(f"SELECT min({src.partition_column}), max({src.partition_column}) "
                                                  f"FROM {src.table} WHERE {where}"), bounds).one()
            if oldest is not None:
                uncovered.append(f"{oldest:%Y-%m}" + (f" to {newest:%Y-%m}" if f"{newest:%Y-%m}" != f"{oldest:%Y-%m}"
                                                      else ""))
    if uncovered:
        raise SyncDeferred(f"{alias} has never been synced and its full load by month is not complete: rows of "
                           f"{', '.join(uncovered)} have no partition load; load them (search_full_load_job, or "
                           f"`orchestrator-data search load {src.index} --month YYYY-MM`), or load everything "
                           f"with `orchestrator-data search sync --full --index {src.index}`")
    return min(row.snapshot_xmin for row in found)


def _gaps(spans: list[tuple[datetime | None, datetime | None]]) -> list[tuple[datetime | None, datetime | None]]:
    """What the half-open spans [start, end) leave uncovered of all time (None: open, minus or plus infinity)."""
    ordered = sorted(spans, key=lambda span: (span[0] is not None, span[0]))
    reached = ordered[0][0]  # everything from the first start up to `reached` is covered (None: minus infinity)
    gaps = [] if reached is None else [(None, reached)]
    for start, end in ordered:
        if start is not None and reached is not None and start > reached:
            gaps.append((reached, start))
        if end is None:
            return gaps
        reached = end if reached is None or end > reached else reached
    gaps.append((reached, None))
    return gaps


def prepare(engine: sa.Engine | None, client: Elasticsearch, layout: Layout, names: Iterable[str] = NAMES, *,
            shards: int = 1, replicas: int = 0) -> list[IndexInit]:
    """init_indices, and for an index created just now forget any watermark a previous copy left in
    PostgreSQL, so that its first sync loads everything instead of only what changed since."""
    results = init_indices(client, layout, tuple(names), shards=shards, replicas=replicas)
    if engine is not None:
        for result in results:
            if result.created and result.name in SOURCES:
                forget(engine, result.read_alias)
    return results
