"""Where each index's sync stands: its watermark in PostgreSQL (search_sync_state), how far it is
behind, and where the first incremental sync after a partitioned full load starts.

The watermark is a transaction id: every change of a transaction at or above it is still to be
applied. It moves only forward, and only after Elasticsearch acknowledged every document below it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from orchestrator_data.postgres import models
from orchestrator_data.search.errors import SyncDeferred
from orchestrator_data.search.history import Writer
from orchestrator_data.search.indices import Layout
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import Source, source_of


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


def load_state(engine: sa.Engine, alias: str) -> sa.Row | None:
    """The index's row of search_sync_state; None: never synced."""
    with engine.connect() as conn:
        return conn.execute(sa.select(models.search_sync_state).where(
            models.search_sync_state.c.index_name == alias)).first()


def save_state(engine: sa.Engine, alias: str, report: SyncReport, *, rebuilt_snapshot: str | None = None,
               writer: Writer | None = None) -> None:
    """Record a finished run: the watermark it made true (never moved backwards) and its counts; a rebuild
    also records the snapshot it loaded everything from (the REWRITE marks it could see are done), and a
    run that did not claim its writer before writing (history.py) records it here."""
    table = models.search_sync_state
    values = {"index_name": alias, "watermark": report.watermark_to, "mapping_version": report.mapping_version,
              "synced_at": sa.func.now(), "documents_written": report.documents_written,
              "documents_deleted": report.documents_deleted}
    if report.mode in ("full", "rebuild", "reindex", "after_full_load"):
        values["full_synced_at"] = sa.func.now()
    if rebuilt_snapshot is not None:
        values["rebuilt_snapshot"] = rebuilt_snapshot
    if writer is not None:
        values |= {"writer_id": writer.id, "writer_generation": writer.generation}
    statement = postgresql.insert(table).values(**values)
    updates = {k: statement.excluded[k] for k in values if k != "index_name"}
    updates["watermark"] = sa.func.greatest(table.c.watermark, statement.excluded.watermark)  # never backwards
    updates["documents_written"] = table.c.documents_written + statement.excluded.documents_written
    updates["documents_deleted"] = table.c.documents_deleted + statement.excluded.documents_deleted
    with engine.begin() as conn:
        conn.execute(statement.on_conflict_do_update(index_elements=[table.c.index_name], set_=updates))


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


def lag(engine: sa.Engine, layout: Layout, name: str) -> Lag:
    """How far Elasticsearch is behind PostgreSQL for one index: changes not yet applied and the age of
    the oldest. Never synced: every row of the table is behind."""
    src = source_of(name)
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
