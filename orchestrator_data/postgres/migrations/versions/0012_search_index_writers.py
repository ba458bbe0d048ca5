"""search sync: which run last wrote each index, so a database that moved back in time is noticed

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

Documents carry their row's `row_version` as an external version. A database that moves back in time
(a point-in-time recovery, a logical restore over the live database, a failover to a lagging standby)
leaves documents "from the future": orphans that no incremental sync sees, and documents whose version
is above a row rewritten later, which no sync may overwrite. Nothing in the rows says it happened.

So every run that writes an index takes a new writer identity, first in PostgreSQL, then on every
backing index of the alias (their mapping's `_meta`), before its first document
(orchestrator_data/search/history.py). The next run compares the two: the database's older or newer
than the index's means the two histories parted, and the run rebuilds the index from PostgreSQL.

* `search_sync_state.writer_id`: the identity (a random UUID) of the run that last wrote the index.
* `search_sync_state.writer_generation`: how many writers came before it (1, 2, …): says which side
  went back.
Both NULL for an index no run has written since this revision: the first run writes them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("search_sync_state", sa.Column("writer_id", postgresql.UUID(as_uuid=True)))
    op.add_column("search_sync_state", sa.Column("writer_generation", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("search_sync_state", "writer_generation")
    op.drop_column("search_sync_state", "writer_id")
