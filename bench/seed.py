"""Seeding a million executions against a bare COPY of the same rows, in the same run.

Both load into the same migrated `executions` table (same indexes, foreign keys and checks; audit
triggers paused for both, as the seeder does). The seeder's time includes generating the rows;
the bare COPY streams the same rows pre-rendered to a file, so it measures the server alone.
Goal: the seeder reaches at least half the bare COPY rate, with bounded memory (the rows are
generated lazily). Memory is the growth of the process's peak RSS during the seed (getrusage), not
tracemalloc, whose bookkeeping slowed the generator sixfold and so falsified the rate.

    python -m bench.seed [--scale 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import resource
import uuid

import psycopg
import sqlalchemy as sa

from orchestrator_data.connections import resolve_url
from orchestrator_data.postgres import migrator, models
from orchestrator_data.postgres.client import create_engine
from orchestrator_data.postgres.rewrites import audit_paused
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import EXECUTION_COLUMNS, SeedPlan, build_small_tables, executions_for
from orchestrator_data.settings import load_settings
from orchestrator_data.urls import libpq_url, replace_database


@contextlib.contextmanager
def scratch_database(base_url: str):
    name = f"bench_seed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(base_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = replace_database(base_url, name)
    try:
        migrator.upgrade(url)
        yield url
    finally:
        with psycopg.connect(libpq_url(base_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _render(plan: SeedPlan, path: str) -> None:
    rows = build_small_tables(plan)
    with open(path, "w") as out:
        for row in executions_for(plan, rows):
            out.write("\t".join(r"\N" if v is None else str(v) for v in row) + "\n")


def main(scale: int = 1_000_000) -> None:
    base = resolve_url("postgres", load_settings())
    plan = SeedPlan(executions=scale)
    with scratch_database(base) as url:
        engine = create_engine(url)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        started = time.perf_counter()
        report = seed(engine, "development", plan)
        seed_seconds = time.perf_counter() - started
        peak_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        seeder_rate = report.inserted["executions"] / seed_seconds

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "executions.tsv")
            _render(plan, path)
            with engine.begin() as conn:
                conn.execute(sa.text("TRUNCATE executions"))
            with engine.begin() as conn, audit_paused(conn, models.AUDITED_TABLES, "bench seed"):
                raw = conn.connection.driver_connection
                started = time.perf_counter()
                with raw.cursor() as cursor, cursor.copy(
                    f"COPY executions ({', '.join(EXECUTION_COLUMNS)}) FROM STDIN"
                ) as copy, open(path) as source:
                    while chunk := source.read(1 << 20):
                        copy.write(chunk)
                bare_seconds = time.perf_counter() - started
        engine.dispose()
    bare_rate = scale / bare_seconds
    print(f"seed      {scale:,} executions (+ small tables) in {seed_seconds:6.2f} s = {seeder_rate:9,.0f} rows/s "
          f"(COPY phase {report.copy_rows_per_s:,.0f} rows/s), peak RSS grew {peak_growth / 1024:.1f} MiB")
    print(f"bare COPY {scale:,} executions                 in {bare_seconds:6.2f} s = {bare_rate:9,.0f} rows/s")
    print(f"ratio seed/bare = {seeder_rate / bare_rate:.2f} (goal >= 0.50)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1_000_000)
    main(parser.parse_args().scale)
