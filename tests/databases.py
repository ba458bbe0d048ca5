"""Fresh databases on the session's PostgreSQL: one per test, dropped (WITH (FORCE)) afterwards.

Roles are cluster-wide, so they are shared by every test database; everything else a test does
stays in its own database. A database "migrated to head" is a copy of one template that the real
migrations built once per stack (tests/test_databases.py holds the copy to a migration's result).
Shared with tests/cli and tests/assets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import sqlalchemy as sa
from psycopg import sql

from orchestrator_data import urls
from orchestrator_data.postgres import client, migrator

# The revision ids in order, from the package's revision files: tests other than the migrator's own
# name the head through these, so that adding a revision does not break them.
REVISIONS = [script.revision for script in migrator._chain(None)]
HEAD = REVISIONS[-1]


def admin_url(stack) -> str:
    """The superuser's libpq URL to the maintenance database."""
    return urls.libpq_url(urls.replace_database(stack.endpoints().database_url, "postgres"))


@contextmanager
def fresh_database(stack, prefix: str = "od_test", owner: str | None = None,
                   template: str | None = None) -> Iterator[str]:
    base = stack.endpoints().database_url
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(stack), autocommit=True) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
    try:
        yield urls.replace_database(base, name)
    finally:
        with psycopg.connect(admin_url(stack), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# stack database URL -> its template database migrated to head
_templates: dict[str, str] = {}


def migrated_template(stack) -> str:
    """The name of a database the migrations brought to head once for this stack, to be copied
    (CREATE DATABASE ... TEMPLATE: about 0.1 s against 1-2 s for running the ten revisions again).
    Nobody connects to it after the migration: PostgreSQL copies only a database nobody is on."""
    base = stack.endpoints().database_url
    if base not in _templates:
        name = f"od_template_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin_url(stack), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        migrator.upgrade(urls.replace_database(base, name))
        with psycopg.connect(admin_url(stack), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
                         .format(sql.Identifier(name)))
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        _templates[base] = name
    return _templates[base]


@contextmanager
def migrated_copy(stack, prefix: str = "od_test") -> Iterator[str]:
    """A fresh database migrated to head, as production gets it: a copy of `migrated_template`."""
    with fresh_database(stack, prefix=prefix, template=migrated_template(stack)) as url:
        yield url


@contextmanager
def migrated_database(stack, prefix: str = "od_test") -> Iterator[tuple[str, sa.Engine]]:
    """A fresh database migrated to head, as production gets it, with an engine on it."""
    with migrated_copy(stack, prefix=prefix) as url:
        engine = client.create_engine(url, pool=client.PoolOptions(size=2, max_overflow=2))
        try:
            yield url, engine
        finally:
            engine.dispose()
