"""search full load by month: a record of every partition loaded

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

* `search_partition_loads`: one row per finished partition load of a search index (the full load of
  executions or audit_logs, one month per step; orchestrator_data/search/full_load.py): which index
  (its read alias), the month's bounds (NULL: open — the first partition also loads every older row,
  the last every later one), the xmin of the snapshot it read, rows read, documents written, already
  current, when and how long. A load never moves the incremental watermark; the first incremental
  sync of a never-synced index whose loads cover every row starts from the lowest snapshot_xmin
  instead of loading everything again. Owner-written; the read-only role may read it and its
  identity sequence (backups' pg_dump).
* BRIN indices on `executions.created_at` and `audit_logs.occurred_at`: each partition reads one month,
  and without them every partition would scan the whole table. Both tables are appended in time order,
  so a month lives in a contiguous range of pages; a BRIN index is a few pages per million rows and
  builds in one pass (a btree would take far longer to build, under the same lock, for no gain here).
  Retention's `created_at < horizon` / `occurred_at < horizon` scans use them too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

READONLY = "orchestrator_readonly"


def upgrade() -> None:
    op.create_table(
        "search_partition_loads",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("index_name", sa.Text, nullable=False),
        sa.Column("partition_key", sa.Text, nullable=False),
        sa.Column("partition_start", sa.DateTime(timezone=True)),
        sa.Column("partition_end", sa.DateTime(timezone=True)),
        sa.Column("snapshot_xmin", sa.BigInteger, nullable=False),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("documents_written", sa.BigInteger, nullable=False),
        sa.Column("already_current", sa.BigInteger, nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_search_partition_loads"),
    )
    op.create_index("ix_executions_created_at_brin", "executions", ["created_at"], postgresql_using="brin")
    op.create_index("ix_audit_logs_occurred_at_brin", "audit_logs", ["occurred_at"], postgresql_using="brin")
    op.create_index("ix_search_partition_loads_index_name", "search_partition_loads", ["index_name"])
    op.execute(f"GRANT SELECT ON search_partition_loads TO {READONLY}")
    op.execute(f"GRANT SELECT ON SEQUENCE search_partition_loads_id_seq TO {READONLY}")


def downgrade() -> None:
    op.drop_table("search_partition_loads")
    op.drop_index("ix_audit_logs_occurred_at_brin", table_name="audit_logs")
    op.drop_index("ix_executions_created_at_brin", table_name="executions")
