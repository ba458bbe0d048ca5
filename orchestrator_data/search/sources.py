"""Where each index's documents come from in PostgreSQL, and reading them: the source tables, a
row as a change to apply, and the streaming reads (server-side cursor, in batches) the sync, the
full load and the repair share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa

from orchestrator_data.search.errors import SyncError, UnknownIndex

BATCH = 1000
# A hard-deleted row can never come back (its id was a random UUID): its delete outranks any write.
DELETED_FOREVER = 2**62
# An execution's version: its own row_version in the high bits, its workflow's in the low 31.
PARENT_BITS = 31


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


def source_of(name: str) -> Source:
    """The source of a synced index; UnknownIndex, or SyncError for an index not fed from PostgreSQL."""
    if name not in SOURCES:
        if name in ("system_metrics",):
            raise SyncError(f"index '{name}' is not synced from PostgreSQL (its documents come from the metrics asset)")
        raise UnknownIndex(name)
    return SOURCES[name]


# -- documents ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    id: str
    version: int
    document: str | dict | None     # JSON text as PostgreSQL rendered it (or a dict); None: delete


def row_change(row: sa.RowMapping) -> Change:
    return Change(str(row["id"]), int(row["version"]), None if row["deleted"] else row["document"])


# -- reading PostgreSQL ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    xmin: int   # every transaction below it has ended
    text: str   # the whole snapshot (pg_snapshot), to ask later what it could see (pg_visible_in_snapshot)


@contextmanager
def consistent_snapshot(engine: sa.Engine) -> Iterator[tuple[sa.Connection, Snapshot]]:
    """A REPEATABLE READ, read-only transaction and its snapshot (its first statement fixes it)."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            xmin, text = conn.execute(sa.text(
                "SELECT pg_snapshot_xmin(s)::text::bigint, s::text FROM pg_current_snapshot() s")).one()
            yield conn, Snapshot(xmin, text)


def stream_rows(conn: sa.Connection, statement: str, params: dict | None = None) -> Iterator[sa.RowMapping]:
    """The rows of `statement` from a server-side cursor, BATCH at a time: memory stays bounded."""
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
    changed = stream_rows(conn, "SELECT DISTINCT table_name, record_id FROM audit_logs WHERE transaction_id >= :low "
                                "AND table_name = ANY(:tables) AND action NOT IN ('ALERT', 'REWRITE')",
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
            for child in stream_rows(conn, src.children[table], {"ids": batch}):
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


class RewriteFound(Exception):
    """Rows this index is made of were written behind the audit trail (REWRITE marks, postgres/rewrites.py)
    by a transaction the window holds: its changes cannot be applied one by one; the index is rebuilt."""

    def __init__(self, index: str, marks: list[tuple[str, str]]):
        self.marks = marks  # (table, reason)
        super().__init__(f"{index}: rows rewritten behind the audit trail (" +
                         "; ".join(f"{table}: {reason}" for table, reason in marks) + ")")


def rewrite_marks(conn: sa.Connection, src: Source, low: int, covered: str | None) -> list[tuple[str, str]]:
    """The REWRITE marks of the tables `src` is made of, by visible transactions from `low` on, that the
    snapshot `covered` (the last rebuild's: it loaded their rows) could not see."""
    tables = list(src.tables) or [src.table]
    return [(table, reason) for table, reason in conn.execute(sa.text(
        "SELECT DISTINCT table_name, coalesce(new_values->>'reason', '') FROM audit_logs "
        "WHERE action = 'REWRITE' AND transaction_id >= :low AND table_name = ANY(:tables) "
        "AND (CAST(:covered AS pg_snapshot) IS NULL "
        "     OR NOT pg_visible_in_snapshot(transaction_id::text::xid8, CAST(:covered AS pg_snapshot)))"),
        {"low": low, "tables": tables, "covered": covered})]


def window_changes(conn: sa.Connection, src: Source, low: int) -> Iterator[list[Change]]:
    """The changes of the visible transactions from `low` on, in batches (an incremental sync)."""
    if src.append_only:
        rows = stream_rows(conn, f"{src.select} WHERE q.transaction_id >= :low", {"low": low})
        for batch in batched(rows, BATCH):
            yield [row_change(row) for row in batch]
        return
    for ids in batched(_changed_ids(conn, src, low), BATCH):
        yield changes_for(conn, src, ids)


def all_changes(conn: sa.Connection, src: Source) -> Iterator[list[Change]]:
    """Every row as a change, in batches (a full sync or a reindex)."""
    for batch in batched(stream_rows(conn, src.select), BATCH):
        yield [row_change(row) for row in batch]


def postgres_rows(engine: sa.Engine, name: str) -> int:
    """The rows that should be documents of `name` (soft-deleted ones excluded)."""
    src = source_of(name)
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM ({src.select}) s WHERE NOT s.deleted")).scalar_one()
