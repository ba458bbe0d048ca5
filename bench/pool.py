"""Pooled round trips against a fresh connection per operation, for PostgreSQL and Redis.

Why it matters: the resources keep a sized pool; this shows what that buys on this machine
(a fresh PostgreSQL connection with SCRAM authentication costs far more than a query).
Baseline: a new connection per operation, measured in the same run. Prints the speedup ratio.
"""

from __future__ import annotations

import time

import psycopg
import redis
import sqlalchemy as sa

from orchestrator_data.connections import postgres_engine, redis_client, resolve_url
from orchestrator_data.settings import load_settings
from orchestrator_data.urls import libpq_url


def _rate(operation, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        operation()
    return count / (time.perf_counter() - start)


def main(count: int = 300) -> None:
    settings = load_settings()
    pg_url = resolve_url("postgres", settings)
    engine = postgres_engine(settings, pg_url)

    def pooled_pg():
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()

    def fresh_pg():
        with psycopg.connect(libpq_url(pg_url)) as conn:
            conn.execute("SELECT 1").fetchone()

    pooled_pg()  # warm the pool
    pooled, fresh = _rate(pooled_pg, count), _rate(fresh_pg, count // 3)
    engine.dispose()
    print(f"postgres  pooled {pooled:9.0f} ops/s   fresh connection {fresh:9.0f} ops/s   "
          f"ratio {pooled / fresh:6.1f}x")

    r_url = resolve_url("redis", settings)
    client = redis_client(settings, r_url)

    def fresh_redis():
        one = redis.Redis.from_url(r_url)
        one.ping()
        one.close()

    client.ping()
    pooled, fresh = _rate(client.ping, count * 3), _rate(fresh_redis, count)
    client.close()
    print(f"redis     pooled {pooled:9.0f} ops/s   fresh connection {fresh:9.0f} ops/s   "
          f"ratio {pooled / fresh:6.1f}x")


if __name__ == "__main__":
    main()
