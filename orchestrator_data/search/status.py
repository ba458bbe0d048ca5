"""Where each index stands, for `search status`, the Dagster metadata and the reconciliation checks:
its alias and backing indices, mapping version, documents and size in Elasticsearch, rows in
PostgreSQL, how far the sync is behind, and whether the two sides agree.

"Behind" alone is not the truth: a sync that has nothing left to apply can still sit on a wrong
index (rows rewritten behind the audit trail, documents written by hand). So a synced index's state
also compares documents with rows, organization by organization, and says "differs" when they do
not agree with nothing left to apply; and "histories differ" when the database or the index went back
in time (a restore, a point-in-time recovery, a failover, a snapshot restored: history.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.search.history import histories_differ
from orchestrator_data.search.indices import NAMES, IndexStatus, Layout, index_status
from orchestrator_data.search.query import count_by_organization
from orchestrator_data.search.reconcile import postgres_counts
from orchestrator_data.search.sources import SOURCES, rewrite_marks, source_of
from orchestrator_data.search.watermarks import lag as sync_lag
from orchestrator_data.search.watermarks import load_state


class State(StrEnum):
    IN_STEP = "in step"                  # nothing left to apply, and documents equal rows per organization
    BEHIND = "behind"                    # changes still to apply (the next sync applies them)
    REBUILD_PENDING = "rebuild pending"  # rows rewritten behind the audit trail: the next sync rebuilds
    HISTORIES_DIFFER = "histories differ"  # the database or the index went back in time: the next sync rebuilds
    DIFFERS = "differs"                  # nothing left to apply, yet documents and rows disagree
    NEVER_SYNCED = "never synced"


@dataclass
class IndexReport(IndexStatus):
    """An index's status in Elasticsearch, and for a synced one its PostgreSQL side and lag."""

    synced: bool = False                 # fed from PostgreSQL (system_metrics is not)
    postgres_rows: int | None = None
    lag_seconds: float | None = None
    lag_rows: int | None = None
    watermark: int | None = None
    synced_at: str | None = None
    state: State | None = None           # synced indices only
    # organization ("" for none) -> (rows in PostgreSQL, documents), where the two differ
    organizations_differing: dict[str, tuple[int, int]] = field(default_factory=dict)
    rewritten: list[str] = field(default_factory=list)  # "table: what rewrote it", marks the next sync rebuilds for
    histories: str | None = None         # why the database and the index no longer share a history (history.py)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line: the state and, where it is not in step, the numbers and what repairs it."""
        if self.state is None:
            return f"{self.documents:,} documents"
        counts = f"{self.documents:,} documents, {self.postgres_rows:,} rows"
        if self.state == State.IN_STEP:
            return f"in step: {counts}"
        if self.state == State.BEHIND:
            return f"behind: {self.lag_rows:,} changes to apply ({counts})"
        if self.state == State.HISTORIES_DIFFER:
            return f"histories differ: {self.histories} ({counts}); the next sync rebuilds it"
        if self.state == State.REBUILD_PENDING:
            return f"rebuild pending: {'; '.join(self.rewritten)} ({counts}); the next sync rebuilds it"
        if self.state == State.NEVER_SYNCED:
            return f"never synced ({counts}): run `orchestrator-data search sync --index {self.name}`"
        return (f"differs: {counts}, {len(self.organizations_differing):,} organization(s) disagree; repair: "
                f"`orchestrator-data search sync --full --index {self.name}`")


def index_report(engine: sa.Engine | None, client: Elasticsearch, layout: Layout, name: str) -> IndexReport:
    report = IndexReport(**vars(index_status(client, layout, name)), synced=name in SOURCES)
    if report.synced and engine is not None and report.exists:
        rows = postgres_counts(engine, name)
        documents = count_by_organization(client, layout, name)
        report.postgres_rows = sum(rows.values())
        report.organizations_differing = {org: (rows.get(org, 0), documents.get(org, 0))
                                          for org in sorted(set(rows) | set(documents))
                                          if rows.get(org, 0) != documents.get(org, 0)}
        lag = sync_lag(engine, layout, name)
        report.lag_rows, report.lag_seconds, report.watermark = lag.rows_behind, lag.seconds_behind, lag.watermark
        report.synced_at = lag.synced_at.isoformat() if lag.synced_at else None
        report.rewritten = _rewritten(engine, layout, name)
        if lag.watermark is not None:
            report.histories = histories_differ(client, layout, name, load_state(engine, report.alias))
        report.state = (State.NEVER_SYNCED if lag.watermark is None else State.HISTORIES_DIFFER if report.histories
                        else State.REBUILD_PENDING if report.rewritten
                        else State.BEHIND if lag.rows_behind else State.DIFFERS if report.organizations_differing
                        else State.IN_STEP)
    elif report.synced and engine is not None:
        report.postgres_rows = sum(postgres_counts(engine, name).values())
    return report


def _rewritten(engine: sa.Engine, layout: Layout, name: str) -> list[str]:
    """The REWRITE marks since the index's last rebuild, which its next sync rebuilds for."""
    state = load_state(engine, layout.read_alias(name))
    if state is None:
        return []
    with engine.connect() as conn:
        return [f"{table}: {reason}" for table, reason in
                rewrite_marks(conn, source_of(name), state.watermark, state.rebuilt_snapshot)]


def search_status(engine: sa.Engine | None, client: Elasticsearch, layout: Layout,
                  names: tuple[str, ...] = NAMES) -> list[IndexReport]:
    return [index_report(engine, client, layout, name) for name in names]


def as_json(reports: list[IndexReport]) -> dict:
    return {"indices": {r.name: {"alias": r.alias, "exists": r.exists, "backing_indices": r.backing_indices,
                                 "mapping_version": r.mapping_version, "documents": r.documents,
                                 "size_bytes": r.size_bytes, "postgres_rows": r.postgres_rows,
                                 "lag_seconds": r.lag_seconds, "lag_rows": r.lag_rows, "watermark": r.watermark,
                                 "synced_at": r.synced_at, "state": r.state and str(r.state),
                                 "organizations_differing": {org: {"postgres_rows": pg, "documents": es}
                                                             for org, (pg, es) in r.organizations_differing.items()},
                                 "rewritten": r.rewritten, "histories": r.histories}
                        for r in reports}}
