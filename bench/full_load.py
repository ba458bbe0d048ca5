"""The partitioned full load on two Celery workers against the same load in one process, same run.

N seeded executions (and the audit rows the seed writes with them) in a scratch database, loaded twice
into fresh indices:

1. baseline: every month of both indices, one after another, in this process (the core's
   load_partition, no Dagster);
2. scaled out: two `orchestrator-data worker start --concurrency 1` processes and `dagster job backfill`
   of search_full_load_job over the same months through the daemon's run queue (one run per month,
   its two steps on the workers), timed from the backfill command to the last run's end.

Both must end with exactly the PostgreSQL rows as documents. Printed: both times, their ratio, and
where the scaled-out time goes (the steps' own load time per worker against Dagster's run and step
overhead). On two cores with the node on the same machine the point is that the work spreads and
nothing is lost, not a speed-up.

    python -m bench.full_load [--scale 1000000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import dagster as dg
import redis
import sqlalchemy as sa
from dagster._core.events import DagsterEventType

from bench.seed import scratch_database
from orchestrator_data import connections, workers
from orchestrator_data.postgres.client import create_engine
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import full_load, indices, sources, sync
from orchestrator_data.settings import load_settings

INDICES = ("executions", "audit_logs")
CELERY_DB = "14"
BIN = Path(sys.executable).parent
WORKSPACE = Path(__file__).resolve().parents[1] / "workspace.yaml"


def _months(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT DISTINCT to_char(m, 'YYYY-MM') FROM (SELECT date_trunc('month', created_at) m FROM executions "
            "UNION SELECT date_trunc('month', occurred_at) FROM audit_logs) s "
            "UNION SELECT to_char(now(), 'YYYY-MM') ORDER BY 1")).scalars())


def _documents(client, layout: indices.Layout, name: str) -> int:
    client.indices.refresh(index=layout.read_alias(name))
    return client.count(index=layout.read_alias(name))["count"]


def _stop(process: subprocess.Popen) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is None:
            os.killpg(process.pid, signum)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass


def _scaled_out(env: dict[str, str], months: list[str], logs: Path) -> tuple[float, dict[int, float], int]:
    """The backfill's wall time, the steps' own time per worker process, and the number of steps."""
    started_workers = [subprocess.Popen([str(BIN / "orchestrator-data"), "worker", "start", "--concurrency", "1"],
                                        env=env, stdout=(logs / f"worker-{i}.log").open("w"),
                                        stderr=subprocess.STDOUT, start_new_session=True) for i in range(2)]
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)], env=env,
                              stdout=(logs / "daemon.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        control = workers.control_app(env["BROKER"])
        while len(workers.live_workers(control, timeout_s=1)) < 2:
            time.sleep(0.5)
        time.sleep(5)  # the daemon's first tick
        started = time.perf_counter()
        out = subprocess.run([str(BIN / "dagster"), "job", "backfill", "-j", "search_full_load_job", "-w",
                              str(WORKSPACE), "--partitions", ",".join(months), "--noprompt"],
                             env=env, capture_output=True, text=True, check=True).stdout
        backfill_id = out.split("Launched backfill job `")[1].split("`")[0]
        with dg.DagsterInstance.get() as instance:
            while True:
                runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
                if len(runs) == len(months) and all(r.is_finished for r in runs):
                    break
                time.sleep(0.5)
            wall = time.perf_counter() - started
            failed = [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
            assert not failed, f"backfill runs failed: {failed}"
            busy: dict[int, float] = {}
            steps = 0
            for run in runs:
                records = instance.all_logs(run.run_id, of_type={DagsterEventType.STEP_START,
                                                                 DagsterEventType.STEP_SUCCESS})
                begun = {r.step_key: r for r in records if r.dagster_event.event_type == DagsterEventType.STEP_START}
                for record in records:
                    if record.dagster_event.event_type == DagsterEventType.STEP_SUCCESS:
                        start = begun[record.step_key]
                        busy[start.dagster_event.pid] = busy.get(start.dagster_event.pid, 0.0) + (
                            record.timestamp - start.timestamp)
                        steps += 1
        return wall, busy, steps
    finally:
        for process in (daemon, *started_workers):
            _stop(process)


def main(scale: int = 1_000_000) -> None:
    settings = load_settings()
    client = connections.elasticsearch_client(settings, request_timeout=120)
    local, remote = indices.Layout(f"bl{uuid.uuid4().hex[:8]}"), indices.Layout(f"bw{uuid.uuid4().hex[:8]}")
    base = connections.resolve_url("postgres", settings)
    logs = Path(settings.state_dir).absolute() / "bench-full-load"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        with scratch_database(base) as url:
            engine = create_engine(url)
            seed(engine, "development", SeedPlan(executions=scale))
            months = _months(engine)
            first = f"{months[0]}-01"
            for layout in (local, remote):
                sync.create_indices(engine, client, layout, INDICES)

            # 1. one process
            started = time.perf_counter()
            for name in INDICES:
                for month in months:
                    full_load.load_partition(engine, client, local, name,
                                             full_load.partition(month, date.fromisoformat(first)))
            one_process = time.perf_counter() - started

            # 2. two workers, through a backfill
            celery = load_settings(DAGSTER_CELERY_REDIS_DB=CELERY_DB)
            broker = workers.broker_url(celery, connections.resolve_url("redis", celery))
            redis.Redis.from_url(broker).flushdb()
            home = Path(os.environ.get("DAGSTER_HOME") or logs / "dagster_home")
            home.mkdir(exist_ok=True)
            (home / "dagster.yaml").write_text((WORKSPACE.parent / "dagster.yaml").read_text())
            os.environ["DAGSTER_HOME"] = str(home)
            env = {**os.environ, "DATABASE_URL": url, "DAGSTER_PG_URL": connections.resolve_url("dagster", settings),
                   "SEARCH_INDEX_PREFIX": remote.prefix, "DAGSTER_EXECUTOR": "celery",
                   "DAGSTER_CELERY_REDIS_DB": CELERY_DB, "SEARCH_PARTITIONS_START": first, "BROKER": broker,
                   "ORCHESTRATOR_DATA_RECORD": "0"}
            wall, busy, steps = _scaled_out(env, months, logs)

            rows = {name: sources.postgres_rows(engine, name) for name in INDICES}
            for layout in (local, remote):
                for name in INDICES:
                    found = _documents(client, layout, name)
                    assert found == rows[name], f"{layout.prefix} {name}: {found} documents, {rows[name]} rows"
            engine.dispose()
    finally:
        for layout in (local, remote):
            indices.drop_indices(client, layout, INDICES)
        client.close()

    documents = sum(rows.values())
    print(f"full load of {documents:,} documents ({rows['executions']:,} executions, {rows['audit_logs']:,} audit "
          f"rows) in {len(months)} months x {len(INDICES)} indices; both ended exact")
    print(f"one process  {one_process:8.2f} s = {documents / one_process:9,.0f} docs/s")
    print(f"two workers  {wall:8.2f} s = {documents / wall:9,.0f} docs/s (backfill command to the last run's end)")
    print(f"ratio one process / two workers = {one_process / wall:.2f} (above 1: faster on the workers)")
    for pid, seconds in sorted(busy.items()):
        print(f"  worker process {pid}: {seconds:7.2f} s inside steps ({seconds / wall:.0%} of the wall time)")
    inside = sum(busy.values())
    print(f"  {steps} steps; time inside steps {inside:.2f} s vs the one-process load {one_process:.2f} s; the rest "
          f"of the wall time is Dagster's run queue, run processes and step hand-over "
          f"({wall - max(busy.values(), default=0.0):.2f} s beyond the busiest worker)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1_000_000)
    main(parser.parse_args().scale)
