"""Rows written behind the audit trail leave a mark in it.

The search sync learns of every change from the audit trail (one row per INSERT, UPDATE and DELETE,
carrying its transaction id). A writer that pauses the row-audit triggers (the seed, so that a
million synthetic executions do not become a million audit rows) would leave it blind: the rows it
wrote, deleted or re-created with a lower row_version never reach Elasticsearch. So whoever writes
unaudited leaves one `REWRITE` audit row per table in the same transaction (revision 0011). The sync
treats a mark in its window as "this table was rewritten": it rebuilds the index from PostgreSQL
(orchestrator_data/search/rebuild.py). The mark commits or rolls back with the rows it speaks for.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator

import sqlalchemy as sa

from orchestrator_data.postgres.security import AUDIT_FUNCTION

REWRITE = "REWRITE"


def mark_rewritten(conn: sa.Connection, tables: Iterable[str], reason: str) -> None:
    """One REWRITE audit row per table, in the open transaction (the login owns the tables: it may write
    the audit trail directly, as migrations do)."""
    for table in tables:
        conn.execute(sa.text(
            "INSERT INTO audit_logs (actor_role, login_role, action, table_name, new_values) "
            "VALUES (current_user, session_user, :action, :table, CAST(:values AS jsonb))"),
            {"action": REWRITE, "table": table, "values": json.dumps({"reason": reason})})


def _audit_triggers(conn: sa.Connection, table: str) -> list[str]:
    """The row-audit triggers on `table` (never audit_logs' own append-only guard)."""
    return list(conn.execute(sa.text(
        "SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
        "WHERE t.tgrelid = to_regclass(:table) AND NOT t.tgisinternal AND p.proname = :function"
    ), {"table": f"public.{table}", "function": AUDIT_FUNCTION}).scalars())


@contextlib.contextmanager
def audit_paused(conn: sa.Connection, tables: Iterable[str], reason: str) -> Iterator[None]:
    """Disable the audit triggers of `tables` until the end of this block (ALTER TABLE … DISABLE TRIGGER is
    transactional and needs table ownership), and mark each table rewritten in the same transaction."""
    tables = tuple(tables)
    paused = [(table, trigger) for table in tables for trigger in _audit_triggers(conn, table)]
    for table, trigger in paused:
        conn.execute(sa.text(f'ALTER TABLE "{table}" DISABLE TRIGGER "{trigger}"'))
    mark_rewritten(conn, tables, reason)
    yield
    for table, trigger in paused:
        conn.execute(sa.text(f'ALTER TABLE "{table}" ENABLE TRIGGER "{trigger}"'))
