"""Catalog inspection: how the live schema compares with the models, and how big each table is.

Read-only; takes no lock. The `postgres_schema` asset and its drift check call these.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from orchestrator_data.postgres import models
from orchestrator_data.postgres.client import Bind, connection_for
from orchestrator_data.postgres.roles import SCHEMA
from orchestrator_data.redaction import redact

VERSION_TABLE = "alembic_version"


def table_exists(conn: sa.Connection, table: str) -> bool:
    return conn.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"),
                        {"name": f"{SCHEMA}.{table}"}).scalar_one()


@dataclass(frozen=True)
class TableStats:
    table: str
    rows: int
    rows_exact: bool
    total_bytes: int
    table_bytes: int
    index_bytes: int


def _include_name(name, type_, parent_names) -> bool:
    return not (type_ == "table" and name == VERSION_TABLE)


def _render_diff(diff) -> str:
    if isinstance(diff, list):  # modify_* come as a list of tuples for one column
        return "; ".join(_render_diff(d) for d in diff)
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        where = "models, not in the database" if kind == "add_table" else "database, not in the models"
        return f"{kind}: table {diff[1].name} is in the {where}"
    if kind in ("add_column", "remove_column"):
        where = "models, not in the database" if kind == "add_column" else "database, not in the models"
        return f"{kind}: column {diff[2]}.{diff[3].name} is in the {where}"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        item = diff[1]
        where = "models, not in the database" if kind.startswith("add") else "database, not in the models"
        table = getattr(getattr(item, "table", None), "name", "?")
        return f"{kind}: {type(item).__name__} {item.name} on {table} is in the {where}"
    if kind.startswith("modify_"):
        # ('modify_type', schema, table, column, {existing...}, old, new)
        return f"{kind}: {diff[2]}.{diff[3]} is {diff[5]!r} in the database, {diff[6]!r} in the models"
    return redact(repr(diff))


def check_drift(bind: Bind) -> list[str]:
    """Differences between the live schema and models.metadata, as `alembic check` finds them
    (tables, columns, types, nullability, server defaults, indexes, unique and foreign keys).
    alembic_version is ignored; the ledger is compared like any table. Empty means no drift."""
    with connection_for(bind) as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "compare_server_default": True, "include_name": _include_name,
            "target_metadata": models.metadata,
        })
        diffs = compare_metadata(context, models.metadata)
        conn.rollback()
    return [_render_diff(d) for d in diffs]


def table_stats(bind: Bind, exact_below: int = 100_000) -> list[TableStats]:
    """Rows and sizes of each model table: an exact count when the planner's estimate is under
    `exact_below` (or the table was never analyzed), pg_class.reltuples above that."""
    names = [t.name for t in models.metadata.sorted_tables]
    with connection_for(bind) as conn:
        rows = conn.execute(sa.text(
            "SELECT c.relname, c.reltuples::bigint AS estimate, pg_total_relation_size(c.oid) AS total, "
            "pg_table_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind = 'r' AND c.relname = ANY(:names)"
        ), {"schema": SCHEMA, "names": names}).all()
        found = {r.relname: r for r in rows}
        stats = []
        for name in names:
            r = found.get(name)
            if r is None:
                continue
            exact = r.estimate < 0 or r.estimate < exact_below
            count = (conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one() if exact
                     else int(r.estimate))
            stats.append(TableStats(name, count, exact, r.total, r.heap, r.indexes))
        conn.rollback()
    return stats
