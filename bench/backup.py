"""Backup + restore check against a bare pg_dump -Fc + pg_restore of the same database, same run.

On a scratch database seeded with 200,000 executions: `create_backup` (snapshot, pg_dump, per-table
checksums in the snapshot, sha256) + `restore_check` (sha256, restore into a scratch database,
checksums again, drop) versus `pg_dump -Fc` + `createdb` + `pg_restore` + `dropdb`. Each is run
`rounds` times, alternating, and the best of each is compared. Goal: ratio <= 1.3.

    .venv/bin/python -c "from bench import backup; backup.main()"   (the local stack running)
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from orchestrator_data.backups import _pg, create_backup, restore_check
from orchestrator_data.connections import resolve_url
from orchestrator_data.postgres import migrator
from orchestrator_data.postgres.client import create_engine
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.settings import load_settings
from orchestrator_data.urls import libpq_url, replace_database


@contextlib.contextmanager
def scratch_database(base_url: str, prefix: str):
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(base_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield replace_database(base_url, name)
    finally:
        with psycopg.connect(libpq_url(base_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bare(url: str, work: Path) -> float:
    """What an operator would do by hand: dump, restore into a new database, drop it."""
    plain_url, password = _pg.split_password(url)
    env = _pg.tool_env(password)
    archive = work / f"bare-{uuid.uuid4().hex[:6]}.pgc"
    started = time.perf_counter()
    subprocess.run([str(_pg.tool("pg_dump")), "-Fc", "--no-password", f"--dbname={plain_url}", "-f", str(archive)],
                   env=env, check=True, capture_output=True)
    with scratch_database(url, "bench_bare_restore") as target:
        target_url, _ = _pg.split_password(target)
        subprocess.run([str(_pg.tool("pg_restore")), "--no-password", f"--dbname={target_url}", str(archive)],
                       env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    archive.unlink()
    return seconds


def ours(url: str, work: Path) -> tuple[float, float, float]:
    started = time.perf_counter()
    entry = create_backup(url, work / "backups")
    backed_up = time.perf_counter() - started
    result = restore_check(url, work / "backups", entry.id)
    total = time.perf_counter() - started
    assert result.ok, result.differences
    return total, backed_up, total - backed_up


def main(executions: int = 200_000, rounds: int = 3) -> None:
    base = resolve_url("postgres", load_settings())
    with scratch_database(base, "bench_backup") as url, tempfile.TemporaryDirectory() as tmp:
        migrator.upgrade(url)
        engine = create_engine(url)
        seed(engine, "development", SeedPlan(executions=executions))
        engine.dispose()
        work = Path(tmp)
        bare_runs, our_runs = [], []
        for _ in range(rounds):
            bare_runs.append(bare(url, work))
            our_runs.append(ours(url, work))
        best_bare = min(bare_runs)
        best = min(our_runs)
        print(f"backup    {executions:,} executions: pg_dump+pg_restore {best_bare:6.2f} s   "
              f"create_backup+restore_check {best[0]:6.2f} s (backup {best[1]:.2f} s, restore check {best[2]:.2f} s)   "
              f"ratio {best[0] / best_bare:5.2f} (goal <= 1.3)")


if __name__ == "__main__":
    main()
