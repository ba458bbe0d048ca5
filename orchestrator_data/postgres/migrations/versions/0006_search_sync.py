"""search sync: a row version on the synced tables, an index on the audit trail's transaction ids,
and the sync's watermark table

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

* `row_version` on workflows, executions and marketplace_items, raised by a BEFORE UPDATE trigger.
  Updates of one row are serialized by its row lock, so the value only grows for that row; the search
  sync writes documents with it as their external version, so a replayed, retried or out-of-order
  batch never turns a document back to an older state. The app role gets no UPDATE on the column
  (0005's column grants predate it): only the trigger sets it.
* `ix_audit_logs_transaction_id`: the incremental sync reads the changes made by a window of
  transactions (every INSERT, UPDATE and DELETE of an audited table is an audit row carrying
  txid_current()).
* `search_sync_state`: per index, the watermark below which every transaction's changes are in
  Elasticsearch. Owner-written; the read-only role may read it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

VERSIONED = ("workflows", "executions", "marketplace_items")
READONLY = "orchestrator_readonly"

BUMP = """
CREATE FUNCTION bump_row_version() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    NEW.row_version := OLD.row_version + 1;
    RETURN NEW;
END $$"""


def upgrade() -> None:
    op.execute(BUMP)
    for table in VERSIONED:
        op.add_column(table, sa.Column("row_version", sa.BigInteger, nullable=False, server_default="1"))
        op.execute(f"CREATE TRIGGER {table}_row_version BEFORE UPDATE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION bump_row_version()")
    op.create_index("ix_audit_logs_transaction_id", "audit_logs", ["transaction_id"])
    op.create_table(
        "search_sync_state",
        sa.Column("index_name", sa.Text, nullable=False),
        sa.Column("watermark", sa.BigInteger, nullable=False),
        sa.Column("mapping_version", sa.Integer, nullable=False),
        sa.Column("full_synced_at", sa.DateTime(timezone=True)),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("documents_written", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("documents_deleted", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("index_name", name="pk_search_sync_state"),
    )
    op.execute(f"GRANT SELECT ON search_sync_state TO {READONLY}")


def downgrade() -> None:
    op.drop_table("search_sync_state")
    op.drop_index("ix_audit_logs_transaction_id", table_name="audit_logs")
    for table in VERSIONED:
        op.execute(f"DROP TRIGGER {table}_row_version ON {table}")
        op.drop_column(table, "row_version")
    op.execute("DROP FUNCTION bump_row_version()")
