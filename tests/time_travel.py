"""Moving a test database back in time without a point-in-time recovery: keep a copy of it as it is
now (CREATE DATABASE … TEMPLATE, about 0.1 s), later put that copy back in its place under the same
name. What the database holds afterwards is exactly what it held at the copy — rows, sequences, the
audit trail, the search sync's state — as after a restore or a failover to a standby that stopped
there. Or the way an operator restores a logical backup over the live database: `dump`, later
`restore_over` (pg_restore --clean). Shared with tests/orchestrator_data/recovery and tests/cli."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass

import psycopg
import sqlalchemy as sa
from psycopg import sql

from orchestrator_data import urls
from tests.databases import admin_url


@dataclass(frozen=True)
class Point:
    database: str   # the database the point was taken of
    copy: str       # the copy holding it


def _admin(stack, statement: sql.Composable) -> None:
    with psycopg.connect(admin_url(stack), autocommit=True) as conn:
        conn.execute(statement)


def _nobody_on(stack, database: str, engine: sa.Engine) -> None:
    """A database is copied only while nobody is connected: the engine's pool first, then any other."""
    engine.dispose()
    with psycopg.connect(admin_url(stack), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))


def take_point(stack, url: str, engine: sa.Engine) -> Point:
    """A copy of the database at `url` as it is now."""
    database = urls.database_name(url)
    copy = f"od_point_{uuid.uuid4().hex[:12]}"
    _nobody_on(stack, database, engine)
    _admin(stack, sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(copy), sql.Identifier(database)))
    return Point(database, copy)


def go_back(stack, point: Point, engine: sa.Engine) -> None:
    """Replace the database by its copy at `point` (the copy is used up); `engine` reconnects to it."""
    _nobody_on(stack, point.database, engine)
    _admin(stack, sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(point.database)))
    _admin(stack, sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(point.copy),
                                                                  sql.Identifier(point.database)))


def drop_point(stack, point: Point) -> None:
    _admin(stack, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(point.copy)))


def dump(url: str, archive) -> None:
    """pg_dump of the database at `url`, custom format (the tool the backups use)."""
    from orchestrator_data.backups._pg import split_password, tool, tool_env

    bare, password = split_password(url)
    subprocess.run([str(tool("pg_dump")), "--format=custom", f"--file={archive}", bare], env=tool_env(password),
                   check=True, capture_output=True, timeout=120)


def restore_over(url: str, archive, engine: sa.Engine) -> None:
    """pg_restore --clean of `archive` over the live database at `url`, in one transaction: a logical
    restore over the live database, as an operator runs it."""
    from orchestrator_data.backups._pg import split_password, tool, tool_env

    engine.dispose()
    bare, password = split_password(url)
    done = subprocess.run([str(tool("pg_restore")), "--clean", "--if-exists", "--single-transaction",
                           f"--dbname={bare}", str(archive)], env=tool_env(password), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
