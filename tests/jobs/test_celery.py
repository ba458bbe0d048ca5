"""DAGSTER_EXECUTOR=celery on real servers: two `orchestrator-data worker start` processes started here;
a backfill of the partitioned full load through Dagster's daemon whose every step runs on the workers;
a run launched with `orchestrator-data run` whose worker is SIGKILLed in the middle of a step, then
re-executed from failure."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psutil
import pytest
import redis
import sqlalchemy as sa
from dagster._core.events import DagsterEventType

from orchestrator_data import connections, urls, workers
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import full_load, sources, sync
from orchestrator_data.search.indices import Layout, drop_indices
from orchestrator_data.settings import load_settings
from tests.cli.conftest import SCRIPT, run_cli
from tests.databases import migrated_database

pytestmark = pytest.mark.integration

CELERY_DB = "9"
WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"
# enough executions that their documents take the sync a few seconds: time to kill a worker mid-step
EXECUTIONS = 40_000


@dataclass
class Deployment:
    env: dict[str, str]
    engine: sa.Engine
    layout: Layout
    workers: list[subprocess.Popen]
    logs: Path

    def start_worker(self, index: int) -> subprocess.Popen:
        log = open(self.logs / f"worker-{index}.log", "w")  # noqa: SIM115 - closed with the process
        worker = subprocess.Popen([str(SCRIPT), "worker", "start", "--concurrency", "1"],
                                  env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.workers.append(worker)
        return worker


def _celery_app(env: dict[str, str]):
    settings = load_settings(DAGSTER_CELERY_REDIS_DB=env["DAGSTER_CELERY_REDIS_DB"])
    return workers.control_app(workers.broker_url(settings, connections.resolve_url("redis", settings)))


def _wait_for_workers(env: dict[str, str], pids: set[int], timeout: float = 90) -> list[workers.WorkerInfo]:
    app = _celery_app(env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = [w for w in workers.live_workers(app, timeout_s=1) if w.pid in pids]
        if len(live) == len(pids):
            return live
    raise AssertionError(f"workers {pids} did not answer within {timeout} s")


def _stop(process: subprocess.Popen) -> None:
    for signum, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signum)
            process.wait(timeout=wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


@pytest.fixture(scope="module")
def deployment(stack, tmp_path_factory):
    logs = tmp_path_factory.mktemp("celery")
    prefix = f"w{uuid.uuid4().hex[:10]}"
    with migrated_database(stack, prefix="od_celery") as (url, engine):
        seed(engine, "testing", SeedPlan(executions=EXECUTIONS))
        settings = load_settings()
        client = connections.elasticsearch_client(settings)
        layout = Layout(prefix)
        sync.create_indices(engine, client, layout)
        env = {"DATABASE_URL": url, "DAGSTER_PG_URL": stack.endpoints().dagster_pg_url, "SEARCH_INDEX_PREFIX": prefix, "DAGSTER_EXECUTOR": "celery",
               "DAGSTER_CELERY_REDIS_DB": CELERY_DB, "COLUMNS": "200",
               # the seed's history starts in 2026-05; the first partition also takes every older row
               "SEARCH_PARTITIONS_START": "2026-09-01",
               # a killed worker's step fails after ~6 s of silence (default 15)
               "DAGSTER_CELERY_WORKER_TIMEOUT_S": "6"}
        celery_settings = load_settings(DAGSTER_CELERY_REDIS_DB=CELERY_DB)
        broker = workers.broker_url(celery_settings, connections.resolve_url("redis", celery_settings))
        assert broker.endswith(f"/{CELERY_DB}")
        redis.Redis.from_url(broker).flushdb()  # no tasks or results left by an earlier session
        deployment = Deployment(env, engine, layout, [], logs)
        try:
            started = [deployment.start_worker(i) for i in range(2)]
            _wait_for_workers(env, {w.pid for w in started})
            yield deployment
        finally:
            for worker in deployment.workers:
                _stop(worker)
            drop_indices(client, layout)
            client.close()


def _instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(Path(os.environ["ORCHESTRATOR_DATA_HOME"]) / "dagster_home"))


def _documents(deployment: Deployment, name: str) -> int:
    client = connections.elasticsearch_client(load_settings())
    try:
        client.indices.refresh(index=deployment.layout.read_alias(name))
        return client.count(index=deployment.layout.read_alias(name))["count"]
    finally:
        client.close()


def _worker_of(pid: int, deployment: Deployment) -> subprocess.Popen | None:
    """The worker whose process (or pool process) `pid` is."""
    try:
        process = psutil.Process(pid)
        lineage = {process.pid, *(p.pid for p in process.parents())}
    except psutil.NoSuchProcess:
        return None
    return next((w for w in deployment.workers if w.pid in lineage), None)


def test_worker_status_lists_the_live_workers(deployment):
    result = run_cli("worker", "status", "--json", env=deployment.env)
    assert result.returncode == 0, result.stderr
    import json

    listed = json.loads(result.stdout)
    assert {w["pid"] for w in listed["workers"]} >= {w.pid for w in deployment.workers if w.poll() is None}
    assert all(w["queues"] == ["dagster"] and w["concurrency"] == 1 for w in listed["workers"])
    password = urls.parse_redis_url(connections.resolve_url("redis", load_settings())).password
    assert password and listed["broker"].endswith(f"/{CELERY_DB}") and password not in result.stdout + result.stderr
    for log in deployment.logs.glob("worker-*.log"):  # Celery's banner shows the broker: masked
        assert password not in log.read_text()


def test_a_backfill_of_the_full_load_fans_out_over_both_workers_and_ends_exact(deployment):
    """Dagster's own path: `dagster job backfill` queues one run per month, the daemon's run queue
    launches them, each run sends its two steps (executions, audit_logs) to the workers."""
    client = connections.elasticsearch_client(load_settings())
    drop_indices(client, deployment.layout)  # empty, never synced, no partition loaded
    sync.create_indices(deployment.engine, client, deployment.layout)
    client.close()
    home = Path(os.environ["ORCHESTRATOR_DATA_HOME"]) / "dagster_home"
    env = {**os.environ, **deployment.env, "DAGSTER_HOME": str(home)}
    months = ["2026-09", "2026-10", "2026-11", datetime.now(UTC).strftime("%Y-%m")]  # the first takes every older row
    with (deployment.logs / "daemon.log").open("w") as log:
        daemon = subprocess.Popen([str(SCRIPT.parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        backfill = subprocess.run(
            [str(SCRIPT.parent / "dagster"), "job", "backfill", "-j", "search_full_load_job", "-w", str(WORKSPACE),
             "--partitions", ",".join(dict.fromkeys(months)), "--noprompt"],
            env=env, capture_output=True, text=True, timeout=120)
        assert backfill.returncode == 0, backfill.stdout + backfill.stderr
        with _instance() as instance:
            deadline = time.monotonic() + 240
            backfill_id = _backfill_id(backfill.stdout)
            while True:
                runs = instance.get_runs(dg.RunsFilter(job_name="search_full_load_job",
                                                       tags={"dagster/backfill": backfill_id}))
                assert runs, backfill.stdout
                if all(r.is_finished for r in runs):
                    break
                assert time.monotonic() < deadline, f"backfill runs not finished: {[r.status for r in runs]}; " + (
                    deployment.logs / "daemon.log").read_text()[-3000:]
                time.sleep(1)
            assert len(runs) == len(set(months)) and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
            starts = [record for r in runs for record in instance.all_logs(
                r.run_id, of_type=DagsterEventType.STEP_START)]
            handed = [record for r in runs for record in instance.all_logs(
                r.run_id, of_type=DagsterEventType.ENGINE_EVENT) if "in celery worker" in (
                record.dagster_event.message or "")]
    finally:
        _stop(daemon)
    assert len(starts) == 2 * len(set(months))
    ran_on = {_worker_of(record.dagster_event.pid, deployment) for record in starts}
    assert None not in ran_on and len(ran_on) == 2, "every step on a worker, both workers used"
    # the run's event log names the worker of each step: orchestrator-data-<queue>-<pid>@<host>
    names = {r.dagster_event.engine_event_data.metadata["Celery worker"].value for r in handed}
    assert len(handed) == len(starts) and {n.split("@")[0].rsplit("-", 1)[1] for n in names} == {
        str(w.pid) for w in deployment.workers}
    for name in ("executions", "audit_logs"):
        assert _documents(deployment, name) == sources.postgres_rows(deployment.engine, name)
        assert len(full_load.loads(deployment.engine, deployment.layout.read_alias(name))) == len(set(months))


def _backfill_id(stdout: str) -> str:
    match = re.search(r"Launched backfill job `([^`]+)`", stdout)
    assert match, stdout
    return match.group(1)


def test_a_worker_killed_mid_step_fails_the_run_and_the_rerun_is_exact(deployment):
    """SIGKILL of a worker's whole process group while it writes the executions documents: the run fails
    naming the worker (it does not wait forever); re-executed from failure on the other worker, every
    index ends with exactly its rows, once each."""
    client = connections.elasticsearch_client(load_settings())
    drop_indices(client, deployment.layout)  # created anew and never synced: the run's syncs are full loads
    sync.create_indices(deployment.engine, client, deployment.layout)
    client.close()
    run = subprocess.Popen([str(SCRIPT), "run", "search_sync_job"], env={**os.environ, **deployment.env},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        victim = None
        deadline = time.monotonic() + 120
        with _instance() as instance:
            while victim is None and time.monotonic() < deadline:
                assert run.poll() is None, run.communicate()
                runs = instance.get_runs(dg.RunsFilter(job_name="search_sync_job",
                                                       statuses=[dg.DagsterRunStatus.STARTED]), limit=1)
                starts = instance.all_logs(runs[0].run_id, of_type=DagsterEventType.STEP_START) if runs else []
                step = next((r for r in starts if r.step_key == "search_executions_documents"), None)
                if step is not None and _documents(deployment, "executions") > 0:
                    victim = _worker_of(step.dagster_event.pid, deployment)
                time.sleep(0.2)
            assert victim is not None, "the executions sync was never seen running on a worker"
            run_id = runs[0].run_id
            written = _documents(deployment, "executions")
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
            stdout, stderr = run.communicate(timeout=120)
            assert run.returncode == 1, stdout + stderr
            # the summary names the failed step and why (the reason is only in the run's failure event)
            [lost] = [line for line in stdout.splitlines() if "step search_executions_documents failed" in line]
            assert f"-{victim.pid}@" in lost and "stopped answering" in lost, stdout
            assert written < sources.postgres_rows(deployment.engine, "executions"), "killed before it finished"
            failed = instance.get_run_by_id(run_id)
            assert failed.status == dg.DagsterRunStatus.FAILURE
            failure = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)[0].dagster_event
            assert f"-{victim.pid}@" in str(failure.event_specific_data) + (failure.message or "")
    finally:  # a failed assertion must not leave the run (and its code server) spinning for the next tests
        _stop(run)

    rerun = run_cli("run", "search_sync_job", "--from-failure", run_id, env=deployment.env, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    with _instance() as instance:
        retry = instance.get_runs(dg.RunsFilter(job_name="search_sync_job"), limit=1)[0]
        assert retry.parent_run_id == run_id and retry.status == dg.DagsterRunStatus.SUCCESS
        assert retry.tags["orchestrator-data/source"] == "cli"  # a re-execution from the CLI says so too
        assert "search_executions_documents" in {r.step_key for r in instance.all_logs(
            retry.run_id, of_type=DagsterEventType.STEP_SUCCESS)}
    for name in sources.SYNCED:
        assert _documents(deployment, name) == sources.postgres_rows(deployment.engine, name)
