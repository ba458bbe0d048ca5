"""Erase again, in a database that went back in time (a restore, a point-in-time recovery, a failover
to a lagging standby), everyone the erasure ledger outside the database names (gdpr/ledger.py).

The same code path as an erasure: `gdpr_erase_user(user, by, erased_at)` through erase.reapply_ledger,
in one transaction. Every ledger entry is applied: a person present is erased (ERASURE audit row,
redaction of the trail); one absent only gets the database's ledger row back (the function's
`reapply_at` branch), so the database's own ledger is whole again. Idempotent: a second run erases
no one. PostgreSQL only: the search documents follow through the next sync, and Redis holds no
state of a person the database no longer has once the aftermath of the recovery ran (docs/recovery.md),
which re-applies the ledger first (recovery/aftermath.py)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa

from orchestrator_data.errors import BadInput
from orchestrator_data.gdpr.erase import reapply_ledger
from orchestrator_data.gdpr.ledger import ErasureLedger, LedgerEntry, first_per_user
from orchestrator_data.postgres import models, roles

ERASE_FUNCTION = "public.gdpr_erase_user(uuid, text, timestamptz)"


class NoErasureFunction(BadInput):
    subject = "gdpr reapply"


@dataclass
class ReapplyReport:
    ledger_file: str
    ledger_exists: bool
    entries: int = 0                       # people the ledger names
    erased: list[str] = field(default_factory=list)   # ids present in the database, erased again now
    rows: dict[str, int] = field(default_factory=dict)  # rows touched per table
    unreadable_lines: list[int] = field(default_factory=list)  # ledger lines that do not parse (skipped)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.unreadable_lines

    def as_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}


def ledger_entries_as_rows(entries: list[LedgerEntry]) -> list[tuple]:
    """The file's entries in the shape of the database ledger's rows: (user id, erased_at, erased_by)."""
    return [(e.user_id, e.erased_at, e.erased_by) for e in first_per_user(entries)]


def reapply_entries(engine: sa.Engine, entries: list[LedgerEntry]) -> tuple[list[str], dict[str, int]]:
    """Apply `entries` to the database of `engine`: (ids erased now, rows touched per table)."""
    entries = first_per_user(entries)
    if not entries:
        return [], {}
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regprocedure(:f)"), {"f": ERASE_FUNCTION}).scalar_one() is None:
            raise NoErasureFunction("the database has no gdpr_erase_user (it predates revision 0008): migrate it "
                                    "to head, then re-apply the ledger")
        present = {str(r[0]) for r in conn.execute(sa.select(models.users.c.id).where(
            models.users.c.id.in_([e.user_id for e in entries])))}
        # a restored copy (pg_restore --no-owner) belongs to the restoring login; the owner role holds
        # nothing there, so the function runs as the login itself
        as_owner = roles.owner_usable(conn)
    rows = reapply_ledger(engine, ledger_entries_as_rows(entries), as_owner=as_owner)
    return sorted(present), rows


def reapply_erasures(settings, database_url: str) -> ReapplyReport:
    """Re-apply the ledger file of `settings` (GDPR_LEDGER_FILE) to the database at `database_url`."""
    from orchestrator_data.postgres.client import engine_for

    with engine_for(database_url, "orchestrator-data-gdpr") as engine:
        return reapply_erasures_with(settings, engine)


def reapply_erasures_with(settings, engine: sa.Engine) -> ReapplyReport:
    """The same, through an engine the caller holds (the aftermath of a recovery)."""
    started = time.monotonic()
    ledger = ErasureLedger(Path(settings.gdpr_ledger_path))
    read = ledger.read()
    report = ReapplyReport(str(ledger.path), read.exists, entries=len(first_per_user(read.entries)),
                           unreadable_lines=read.unreadable_lines)
    if read.entries:
        report.erased, report.rows = reapply_entries(engine, read.entries)
    report.duration_s = round(time.monotonic() - started, 3)
    return report
