"""Shared by the URL-credential tests (tests/orchestrator_data and tests/cli): a PostgreSQL role and a
Redis ACL user whose password holds every character a URL reserves, removed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis
from psycopg import sql

from orchestrator_data import urls

PASSWORD = "Zq9@:/?#%[]Kx7w &=+'\"wV"  # each of @ : / ? # % [ ], and a few more that need encoding
ROLE = "url_probe"
# The characters a password may not hold raw (a raw ':' has one reading and is kept).
RAW_REFUSED = ["@", "/", "?", "#", "[", "]", "%"]
# Each URL variable, with the password to fill in (port 1: nothing answers there).
URL_TEMPLATES = {
    "DATABASE_URL": "postgresql://app:{password}@127.0.0.1:1/app",
    "DAGSTER_PG_URL": "postgresql://app:{password}@127.0.0.1:1/dagster",
    "REDIS_URL": "redis://app:{password}@127.0.0.1:1/0",
    "ELASTICSEARCH_URL": "http://app:{password}@127.0.0.1:1",
}


def leaks(text: str, secret: str = PASSWORD, size: int = 4) -> list[str]:
    """The pieces of `secret` (`size` characters or more) that `text` gives away."""
    return [secret[i:i + size] for i in range(len(secret) - size + 1) if secret[i:i + size] in text]


@contextmanager
def postgres_login(stack) -> Iterator[str]:
    """The URL of a login role with PASSWORD on the stack's database (percent-encoded by render())."""
    admin = urls.libpq_url(stack.endpoints().database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(PASSWORD)))
    try:
        yield urls.parse_postgres_url(stack.endpoints().database_url).replace(
            username=ROLE, password=PASSWORD).render()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (ROLE,))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


@contextmanager
def redis_login(stack) -> Iterator[str]:
    """The URL of a Redis ACL user with PASSWORD and every permission on the stack's server."""
    admin = redis.Redis.from_url(stack.endpoints().redis_url)
    admin.acl_setuser(ROLE, enabled=True, reset_passwords=True, passwords=[f"+{PASSWORD}"],
                      keys=["*"], channels=["*"], categories=["+@all"])
    try:
        yield urls.parse_redis_url(stack.endpoints().redis_url).replace(username=ROLE, password=PASSWORD).render()
    finally:
        admin.acl_deluser(ROLE)
        admin.close()
