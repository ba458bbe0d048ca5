"""The purge: delete what the retention policies say, in bounded batches, each its own short transaction.

* Every batch deletes at most the policy's `batch_size` rows in one transaction under a short
  `lock_timeout`, with `FOR UPDATE SKIP LOCKED`: a purge never holds a lock for long, never waits on
  a row the product is writing, and never blocks a sync.
* Everything runs as `orchestrator_owner` (`SET LOCAL ROLE`): row-level security is forced, and the
  owner's policy sees every organization.
* Executions and soft-deleted workflows/marketplace items are deleted with plain DELETEs: the audit
  trigger writes a DELETE audit row for each (cascades included), and the next search sync deletes
  their documents from that trail.
* Audit rows go through `retention_purge_audit_logs()` (revision 0009), which keeps every row the
  sync has not consumed (at or above the lowest watermark in search_sync_state) and returns the ids it
  deleted; with an Elasticsearch client the purge deletes exactly those documents from the audit index.
* A purge in production needs `confirm` (RetentionRefused otherwise); a dry run only counts.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from orchestrator_data.errors import BadInput
from orchestrator_data.postgres.roles import OWNER_ROLE
from orchestrator_data.retention.policies import RetentionPolicy

LOCK_TIMEOUT = "5s"


class RetentionRefused(BadInput):
    """The purge was refused before anything was deleted (e.g. production without confirmation)."""


@dataclass
class TablePurge:
    table: str
    delete_after: str | None
    horizon: datetime | None = None   # rows older than this go
    eligible: int = 0                 # rows past the horizon when the run started
    purged: int = 0
    batches: int = 0
    kept_for_sync: int = 0            # audit rows past the horizon kept: the search sync has not read them yet
    search_documents_deleted: int = 0
    action: str = "kept"              # purged | would purge | kept (no policy)

    def as_dict(self) -> dict:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


@dataclass
class RetentionReport:
    dry_run: bool
    tables: list[TablePurge] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def rows_purged(self) -> int:
        return sum(t.purged for t in self.tables)

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "duration_s": round(self.duration_s, 3), "rows_purged": self.rows_purged,
                "tables": [t.as_dict() for t in self.tables]}


def _begin(conn: sa.Connection) -> None:
    conn.execute(sa.text(f"SET LOCAL ROLE {OWNER_ROLE}"))
    conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))


def _past_horizon(column: str) -> str:
    return f"{column} IS NOT NULL AND {column} < :horizon" if column == "deleted_at" else f"{column} < :horizon"


def _sync_floor(conn: sa.Connection) -> int | None:
    return conn.execute(sa.text("SELECT min(watermark) FROM search_sync_state")).scalar_one()


def _count(engine: sa.Engine, policy: RetentionPolicy, horizon: datetime) -> tuple[int, int]:
    """(rows the purge may delete, audit rows past the horizon it must keep for the sync)."""
    where = _past_horizon(policy.target.age_column)
    with engine.begin() as conn:
        _begin(conn)
        if policy.table != "audit_logs":
            return conn.execute(sa.text(f"SELECT count(*) FROM {policy.table} WHERE {where}"),
                                {"horizon": horizon}).scalar_one(), 0
        floor = _sync_floor(conn)
        row = conn.execute(sa.text(
            f"SELECT count(*) FILTER (WHERE CAST(:floor AS bigint) IS NULL OR transaction_id < :floor), "
            f"count(*) FILTER (WHERE transaction_id >= :floor) FROM audit_logs WHERE {where}"),
            {"horizon": horizon, "floor": floor}).one()
        return row[0], row[1]


def _delete_batch(engine: sa.Engine, policy: RetentionPolicy, horizon: datetime) -> list:
    """One batch in its own transaction; the ids deleted."""
    with engine.begin() as conn:
        _begin(conn)
        if policy.table == "audit_logs":
            return list(conn.execute(sa.text("SELECT * FROM retention_purge_audit_logs(:horizon, :n)"),
                                     {"horizon": horizon, "n": policy.batch_size}).scalars())
        where = _past_horizon(policy.target.age_column)
        return list(conn.execute(sa.text(
            f"DELETE FROM {policy.table} WHERE id IN (SELECT id FROM {policy.table} WHERE {where} "
            f"LIMIT :n FOR UPDATE SKIP LOCKED) RETURNING id"), {"horizon": horizon, "n": policy.batch_size}).scalars())


def check_purge_allowed(production: bool, dry_run: bool, confirm: bool, confirm_with: str = "--confirm") -> None:
    """The one rule of what a purge may do unasked: in production, delete only when confirmed (a dry
    run deletes nothing, so it is always allowed). `confirm_with` says how the caller confirms: the
    CLI's --confirm, or the asset's run config."""
    if production and not dry_run and not confirm:
        raise RetentionRefused(f"refusing to purge production data without {confirm_with} "
                               f"(a dry run shows what would go)")


def purge(engine: sa.Engine, policies: dict[str, RetentionPolicy], *, dry_run: bool = False,
          production: bool = False, confirm: bool = False, delete_documents=None) -> RetentionReport:
    """Apply every policy, in the order given (load_policies: parents first, the audit trail last).
    `delete_documents(ids)`, when given, removes purged audit rows' documents from search and returns
    how many it deleted."""
    check_purge_allowed(production, dry_run, confirm)
    started = time.monotonic()
    report = RetentionReport(dry_run=dry_run)
    with engine.connect() as conn:
        now = conn.execute(sa.text("SELECT now()")).scalar_one()
    for policy in policies.values():
        result = TablePurge(policy.table, policy.delete_after)
        report.tables.append(result)
        if policy.delete_after_s is None:
            result.action = "kept (no policy)"
            continue
        result.horizon = now - timedelta(seconds=policy.delete_after_s)
        result.eligible, result.kept_for_sync = _count(engine, policy, result.horizon)
        if dry_run:
            result.action = "would purge"
            continue
        while True:
            ids = _delete_batch(engine, policy, result.horizon)
            if not ids:
                break
            result.batches += 1
            result.purged += len(ids)
            if delete_documents is not None and policy.table == "audit_logs":
                result.search_documents_deleted += delete_documents(ids)
            if len(ids) < policy.batch_size:
                break
        result.action = "purged"
    report.duration_s = time.monotonic() - started
    return report
