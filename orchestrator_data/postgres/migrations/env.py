"""Alembic environment of orchestrator-data.

Run by `orchestrator_data.postgres.migrator`, which hands over an open connection inside its own
per-revision transaction (config.attributes["connection"]); alembic then sees an external
transaction and neither begins nor commits one. There is no alembic.ini: the migrator builds the
Config in code. Running `alembic` by hand is not supported — it would skip the advisory lock, the
checksum validation and the ledger.
"""

from __future__ import annotations

from alembic import context

from orchestrator_data.postgres import models

IGNORED_TABLES = {"alembic_version"}


def include_name(name, type_, parent_names) -> bool:
    # alembic's own version table is not part of the models; the ledger is (and is compared)
    return not (type_ == "table" and name in IGNORED_TABLES)


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through orchestrator_data.postgres.migrator (it holds the lock and the ledger)")
    context.configure(
        connection=connection,
        target_metadata=models.metadata,
        include_name=include_name,
        compare_type=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) mode is not supported: revisions use DO blocks and role checks")
run_migrations_online()
