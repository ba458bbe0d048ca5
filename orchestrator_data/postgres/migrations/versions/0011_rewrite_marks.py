"""rows rewritten behind the audit trail: a REWRITE audit action and the snapshot each search rebuild read

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

The search sync learns of changes from the audit trail. Whatever writes rows with the row-audit
triggers paused (the seed: a million synthetic executions must not become a million audit rows)
leaves the sync blind, and a row re-created with a lower row_version than its document's would never
be written again. So such a writer now leaves one mark per table in the same transaction:

* the CHECK on audit_logs.action also allows 'REWRITE' (table_name the table, record_id NULL,
  new_values what rewrote it). The mark carries the writer's transaction id like every audit row, so
  the sync's late-commit rule applies to it: the first sync whose window holds it rebuilds the index
  from PostgreSQL instead of applying changes (orchestrator_data/search/rebuild.py).
* `search_sync_state.rebuilt_snapshot`: the snapshot (pg_snapshot as text) that an index's last
  rebuild loaded everything from. A mark visible in it is already in the index; only a later one
  asks for another rebuild (pg_visible_in_snapshot).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _action_check(actions: str) -> None:
    """Swap the CHECK on audit_logs.action, keeping its name (as 0003 and 0008 do; a revision never imports
    another)."""
    expression = f"action IN ({actions})".replace("'", "''")
    op.execute(f"""
DO $$
DECLARE
    name text;
BEGIN
    SELECT c.conname INTO STRICT name FROM pg_constraint c
    WHERE c.conrelid = 'public.audit_logs'::regclass AND c.contype = 'c'
      AND pg_get_constraintdef(c.oid) LIKE '%action%';
    EXECUTE format('ALTER TABLE public.audit_logs DROP CONSTRAINT %I, ADD CONSTRAINT %I CHECK ({expression})',
                   name, name);
END $$""")


def upgrade() -> None:
    _action_check("'INSERT', 'UPDATE', 'DELETE', 'ALERT', 'EXPORT', 'ERASURE', 'REWRITE'")
    op.add_column("search_sync_state", sa.Column("rebuilt_snapshot", sa.Text))


def downgrade() -> None:
    op.drop_column("search_sync_state", "rebuilt_snapshot")
    op.execute("DELETE FROM audit_logs WHERE action = 'REWRITE'")
    _action_check("'INSERT', 'UPDATE', 'DELETE', 'ALERT', 'EXPORT', 'ERASURE'")
