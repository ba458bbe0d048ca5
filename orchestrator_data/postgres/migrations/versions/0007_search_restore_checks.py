"""search snapshots: the results of their restore checks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08

* `search_restore_checks`: one row per restore check of an Elasticsearch snapshot (restored into
  renamed indices, counts and a sample of documents compared, the copies deleted): which repository
  and snapshot, when, whether it passed, and the per-index comparison as JSON. `search snapshot list`
  shows each snapshot's latest result; the restore-check freshness promise reads the newest passing
  one. Owner-written; the read-only role (backups' pg_dump) may read it and its identity sequence.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

READONLY = "orchestrator_readonly"


def upgrade() -> None:
    op.create_table(
        "search_restore_checks",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("repository", sa.Text, nullable=False),
        sa.Column("snapshot", sa.Text, nullable=False),
        sa.Column("snapshot_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("summary", pg.JSONB, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_search_restore_checks"),
    )
    op.create_index("ix_search_restore_checks_repository_snapshot", "search_restore_checks",
                    ["repository", "snapshot"])
    op.execute(f"GRANT SELECT ON search_restore_checks TO {READONLY}")
    # backups run as the read-only role, and pg_dump reads every sequence (0003 granted the ones before)
    op.execute(f"GRANT SELECT ON SEQUENCE search_restore_checks_id_seq TO {READONLY}")


def downgrade() -> None:
    op.drop_table("search_restore_checks")
