"""PostgreSQL's figures, read with as little privilege as the statistics views allow.

Only `pg_stat_activity`, `pg_stat_database`, `pg_class`, `pg_database_size` and
`pg_total_relation_size` (readable by any role that can connect), plus `pg_stat_statements` when the
extension is installed in this database. Without `pg_read_all_stats`, other roles' sessions show no
state (counted as `unknown`) and their statements no text (left out).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from orchestrator_data.metrics import replication as replication_metrics
from orchestrator_data.metrics.samples import BYTES, COUNT, MILLISECONDS, RATIO, Sample
from orchestrator_data.redaction import redact
from orchestrator_data.replication.status import ReplicationStatus
from orchestrator_data.replication.status import observe_or_why as observe_replication

SERVICE = "postgres"
# States always reported, at 0 when no session is in them, so each one's series has no gaps.
STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")
QUERY_TEXT_LIMIT = 200
# Only planned statements: pg_stat_statements replaces their constants with $n. Utility statements
# (CREATE ROLE ... PASSWORD '...') keep their text as typed, so they are never read.
PLANNED = r"^\s*(select|insert|update|delete|with|merge|values|table)\M"


@dataclass(frozen=True)
class TableSize:
    schema: str
    table: str
    total_bytes: int
    rows_estimate: int | None        # None: never analyzed


@dataclass(frozen=True)
class Statement:
    queryid: str
    query: str
    calls: int
    mean_ms: float
    total_ms: float


@dataclass
class PostgresFigures:
    samples: list[Sample] = field(default_factory=list)
    database: str = ""
    largest_tables: list[TableSize] = field(default_factory=list)
    statements_on: bool = False
    statements_note: str = ""        # why the slowest statements are not there
    slowest_statements: list[Statement] = field(default_factory=list)
    replication: ReplicationStatus | None = None


def _statements_schema(conn: sa.Connection) -> str | None:
    return conn.execute(sa.text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_stat_statements'")).scalar()


def _slowest(conn: sa.Connection, schema: str, limit: int) -> list[Statement]:
    view = f"{conn.dialect.identifier_preparer.quote(schema)}.pg_stat_statements"
    # one entry per statement: the view has a row per (role, statement, top level or nested)
    rows = conn.execute(sa.text(
        f"SELECT queryid::text AS queryid, min(query) AS query, sum(calls) AS calls, "
        f"sum(total_exec_time) AS total_ms, sum(total_exec_time) / sum(calls) AS mean_ms FROM {view} "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query ~* :planned "
        "AND calls > 0 GROUP BY queryid ORDER BY mean_ms DESC, queryid LIMIT :limit"),
        {"planned": PLANNED, "limit": limit}).all()
    return [Statement(r.queryid, redact(" ".join(r.query.split()))[:QUERY_TEXT_LIMIT], int(r.calls),
                      float(r.mean_ms), float(r.total_ms)) for r in rows]


def collect(engine: sa.Engine, *, largest_tables: int = 10, slowest_statements: int = 10) -> PostgresFigures:
    """Connections by state, transactions (counters), cache hit ratio, database size, the largest
    tables and, when pg_stat_statements is installed here, the statements slowest on average."""
    figures = PostgresFigures()
    with engine.connect() as conn:
        database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        figures.database = database
        on_database = {"database": database}
        states = dict.fromkeys(STATES, 0)
        for state, count in conn.execute(sa.text(
                "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() GROUP BY 1")):
            states[state] = int(count)
        figures.samples += [Sample(SERVICE, "connections", n, COUNT, {**on_database, "state": s})
                            for s, n in states.items()]

        stats = conn.execute(sa.text(
            "SELECT xact_commit, xact_rollback, blks_hit, blks_read, pg_database_size(datname) AS size "
            "FROM pg_stat_database WHERE datname = current_database()")).one()
        figures.samples += [
            Sample(SERVICE, "xact_commit", stats.xact_commit, COUNT, on_database, rate_metric="xact_commit_rate"),
            Sample(SERVICE, "xact_rollback", stats.xact_rollback, COUNT, on_database,
                   rate_metric="xact_rollback_rate"),
            Sample(SERVICE, "database_size", stats.size, BYTES, on_database),
        ]
        reads = stats.blks_hit + stats.blks_read
        if reads:
            figures.samples.append(Sample(SERVICE, "cache_hit_ratio", stats.blks_hit / reads, RATIO, on_database))

        for r in conn.execute(sa.text(
                "SELECT n.nspname, c.relname, pg_total_relation_size(c.oid) AS total, c.reltuples::bigint AS rows "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
                "ORDER BY total DESC, n.nspname, c.relname LIMIT :limit"), {"limit": largest_tables}):
            table = TableSize(r.nspname, r.relname, int(r.total), int(r.rows) if r.rows >= 0 else None)
            figures.largest_tables.append(table)
            labels = {**on_database, "schema": table.schema, "table": table.table}
            figures.samples.append(Sample(SERVICE, "table_total_size", table.total_bytes, BYTES, labels))
            if table.rows_estimate is not None:
                figures.samples.append(Sample(SERVICE, "table_rows_estimate", table.rows_estimate, COUNT, labels))

        schema = _statements_schema(conn)
        if schema is None:
            figures.statements_note = "pg_stat_statements is not installed in this database"
        else:
            try:
                with conn.begin_nested():
                    figures.slowest_statements = _slowest(conn, schema, slowest_statements)
                figures.statements_on = True
            except sa.exc.DBAPIError as exc:
                # installed but not preloaded (shared_preload_libraries), or not readable by this role
                figures.statements_note = f"pg_stat_statements is installed but unreadable: {redact(str(exc.orig))[:200]}"
        for s in figures.slowest_statements:
            labels = {**on_database, "queryid": s.queryid, "query": s.query}
            figures.samples += [Sample(SERVICE, "statement_mean_time", s.mean_ms, MILLISECONDS, labels),
                                Sample(SERVICE, "statement_calls", s.calls, COUNT, labels)]
        figures.replication, _ = observe_replication(conn)  # unreadable (a managed service): no samples
        if figures.replication is not None:
            figures.samples += replication_metrics.samples(figures.replication)
        conn.rollback()
    return figures
