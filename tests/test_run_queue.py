"""The run queue's tag concurrency limits (dagster.yaml) and the jobs' tags (jobs/queue_tags.py).

The first tests read both sides and the definitions, nothing else. The integration tests run Dagster's
own QueuedRunCoordinatorDaemon (one run_iteration at a time, as Dagster's tests of it do) on a
PostgreSQL-backed instance whose run_coordinator section is the project's dagster.yaml, verbatim.
Only the run launcher is the test's: it launches in a thread of this process instead of a subprocess.
Runs of migrate_job execute for real there (in process, on a database of their own); the runs of the
other jobs are only recorded as STARTED and ended by the test, since what is tested is the queue.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.execution.api import execute_run
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.launcher import RunLauncher
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.run_coordinator import SubmitRunContext
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._serdes import ConfigurableClass

from definitions import defs
from jobs import queue_tags
from jobs.queue_tags import LIVE_SCHEMA_KEY, MIGRATION_KEY, SEARCH_FULL_LOAD_KEY, sync_key
from orchestrator_data import urls
from orchestrator_data.postgres import client, migrator
from orchestrator_data.search.sources import SYNCED
from resources import PostgresResource
from tests.databases import fresh_database

PROJECT_ROOT = Path(__file__).resolve().parents[1]
QUEUED, STARTED, SUCCESS = dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS

# what each limited key is for: the jobs meant to carry it
MEANT = {
    MIGRATION_KEY: {"migrate_job", "bootstrap_job", "reset_job"},
    sync_key("workflows"): {"search_sync_job", "bootstrap_job", "reset_job", "gdpr_erase_job"},
    sync_key("executions"): {"search_sync_job", "bootstrap_job", "reset_job", "gdpr_erase_job"},
    sync_key("marketplace"): {"search_sync_job", "bootstrap_job", "reset_job"},
    sync_key("audit_logs"): {"search_sync_job", "bootstrap_job", "reset_job"},
    LIVE_SCHEMA_KEY: {"postgres_backup_job", "postgres_restore_check_job", "reset_job"},
}


def _project_limits() -> list[dict]:
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    return config["run_coordinator"]["config"]["tag_concurrency_limits"]


def _jobs() -> list[dg.JobDefinition]:
    return [job for job in defs.get_repository_def().get_all_jobs() if not job.name.startswith("__")]


def _selected(job: dg.JobDefinition) -> set[str]:
    return {key.to_user_string() for key in job.asset_layer.executable_asset_keys}


def test_dagster_yaml_limits_one_run_per_limited_key_and_the_jobs_meant_carry_them():
    limits = _project_limits()
    assert {limit["key"] for limit in limits} == set(queue_tags.LIMITED_KEYS) == set(MEANT)
    assert all(limit["limit"] == 1 and "value" not in limit for limit in limits)
    carriers = {key: {job.name for job in _jobs() if key in job.run_tags} for key in MEANT}
    assert carriers == MEANT
    # the full load's partitions run in parallel: its key is not limited (reset_job refuses beside them)
    assert SEARCH_FULL_LOAD_KEY not in {limit["key"] for limit in limits}
    assert {job.name for job in _jobs() if SEARCH_FULL_LOAD_KEY in job.run_tags} == {"search_full_load_job"}


def test_every_job_that_migrates_or_syncs_carries_the_key_whatever_selects_it():
    """Read from the definitions, so a new job selecting postgres_schema or an index's documents
    cannot leave the queue's limits behind."""
    for job in _jobs():
        selected = _selected(job) if job.asset_layer.executable_asset_keys else set()
        if "postgres_schema" in selected:
            assert MIGRATION_KEY in job.run_tags, job.name
        for index in SYNCED:
            if f"search_{index}_documents" in selected:
                assert sync_key(index) in job.run_tags, job.name
        if selected & {"postgres_backup", "postgres_restore_check"}:
            assert LIVE_SCHEMA_KEY in job.run_tags, job.name


def test_the_project_queue_config_is_valid_for_dagster(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["config"]["tag_concurrency_limits"] == _project_limits()


class ThreadRunLauncher(RunLauncher, ConfigurableClass):
    """Launches a run in this process: runs of EXECUTED jobs execute in a thread, in process, on an
    instance of their own; the others are recorded as STARTED and left for the test to end."""

    EXECUTED = {"migrate_job"}

    def __init__(self, inst_data=None):
        self._inst_data = inst_data
        self.launched: list[str] = []
        self.threads: dict[str, threading.Thread] = {}
        super().__init__()

    @property
    def inst_data(self):
        return self._inst_data

    @classmethod
    def config_type(cls):
        return {}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data)

    def launch_run(self, context):
        run = context.dagster_run
        self.launched.append(run.run_id)
        if run.job_name in self.EXECUTED:
            thread = threading.Thread(target=self._execute, args=(run,), daemon=True)
            self.threads[run.run_id] = thread
            thread.start()
        else:
            _report(self._instance, run.run_id, DagsterEventType.RUN_START)
        return run

    def _execute(self, run):
        with dg.DagsterInstance.from_config(self._instance.root_directory) as instance:
            execute_run(InMemoryJob(defs.resolve_job_def(run.job_name)), run, instance)

    def terminate(self, run_id):
        return False


def _report(instance: dg.DagsterInstance, run_id: str, event_type: DagsterEventType) -> None:
    run = instance.get_run_by_id(run_id)
    instance.report_dagster_event(DagsterEvent(event_type_value=event_type.value, job_name=run.job_name),
                                  run_id=run_id)


@pytest.fixture(scope="module")
def queue(stack, tmp_path_factory):
    """(instance, workspace context, daemon): the project's run_coordinator section, Dagster's storage
    in a fresh database of the session's PostgreSQL, the thread launcher."""
    home = tmp_path_factory.mktemp("dagster_home")
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    with fresh_database(stack, prefix="dagster_queue") as dagster_url:
        config["storage"]["custom"]["config"] = {"postgres_url": dagster_url}
        config["run_launcher"] = {"module": __name__, "class": "ThreadRunLauncher"}
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
        with dg.DagsterInstance.from_config(str(home)) as instance, \
                create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as workspace, \
                QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon:
            yield instance, workspace, daemon


@pytest.fixture
def instance(queue):
    instance, _, _ = queue
    instance.wipe()
    instance.run_launcher.launched.clear()
    instance.run_launcher.threads.clear()
    return instance


# the code location the runs name as their origin (the queue reads only its name)
REPOSITORY = RemoteRepositoryOrigin(InProcessCodeLocationOrigin(
    LoadableTargetOrigin(python_file=str(PROJECT_ROOT / "definitions.py"), attribute="defs"),
    location_name="orchestrator_data"), "__repository__")
RUN_CONFIG = {
    "migrate_job": {"execution": {"config": {"in_process": {}}}},
    "gdpr_erase_job": {"ops": {"gdpr_erase": {"config": {"user_id": "00000000-0000-4000-8000-000000000001",
                                                         "requested_by": "tests"}}}},
}


def _submit(instance, job_name: str, tags: dict | None = None) -> str:
    """Submit a run the way the UI does: the job's run tags, then through the run coordinator."""
    job = defs.resolve_job_def(job_name)
    run = instance.create_run_for_job(job, run_config=RUN_CONFIG.get(job_name, {}),
                                      tags=tags if tags is not None else job.run_tags,
                                      remote_job_origin=REPOSITORY.get_job_origin(job_name))
    # the coordinator's own submit (instance.submit_run adds only a check of the code location origin)
    instance.run_coordinator.submit_run(SubmitRunContext(run, workspace=None))
    return run.run_id


def _iterate(queue) -> list[str]:
    """One pass of the daemon; the ids it launched."""
    instance, workspace, daemon = queue
    before = len(instance.run_launcher.launched)
    list(daemon.run_iteration(workspace))
    return instance.run_launcher.launched[before:]


def _status(instance, run_id):
    return instance.get_run_by_id(run_id).status


def _await_lock_waiter(database_url: str, timeout_s: float = 30) -> None:
    """Until the run's migrator (PostgresResource's application_name) polls for the migration lock."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(urls.libpq_url(database_url), autocommit=True) as conn:
        while time.monotonic() < deadline:
            polling = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND application_name = %s AND query LIKE %s",
                                   (PostgresResource().application_name, "%pg_try_advisory_lock%")).fetchone()[0]
            if polling:
                return
            time.sleep(0.05)
    raise AssertionError("the migrate run never waited for the migration lock")


@pytest.mark.integration
def test_a_second_migrate_run_waits_in_the_queue_until_the_first_is_done(queue, instance, stack, monkeypatch):
    with fresh_database(stack, prefix="queue_migrate") as database_url:
        monkeypatch.setenv("DATABASE_URL", database_url)
        engine = client.create_engine(database_url)
        try:
            with migrator.migration_lock(engine):  # the first run will block on it, genuinely in progress
                first = _submit(instance, "migrate_job")
                second = _submit(instance, "migrate_job")
                assert _iterate(queue) == [first]
                _await_lock_waiter(database_url)
                assert _status(instance, first) == STARTED
                assert _iterate(queue) == [] and _status(instance, second) == QUEUED
            instance.run_launcher.threads[first].join(timeout=60)
            assert _status(instance, first) == SUCCESS
            assert _iterate(queue) == [second]
            instance.run_launcher.threads[second].join(timeout=60)
            assert _status(instance, second) == SUCCESS
        finally:  # no run left writing to databases about to be dropped, whatever failed
            for thread in instance.run_launcher.threads.values():
                thread.join(timeout=60)
            engine.dispose()


@pytest.mark.integration
def test_backups_and_restore_checks_wait_for_a_reset_and_for_each_other(queue, instance):
    reset = _submit(instance, "reset_job")
    backup = _submit(instance, "postgres_backup_job")
    restore_check = _submit(instance, "postgres_restore_check_job")
    health = _submit(instance, "health_job")  # limited by nothing but max_concurrent_runs
    assert _iterate(queue) == [reset, health]
    assert _status(instance, backup) == QUEUED and _status(instance, restore_check) == QUEUED
    _report(instance, reset, DagsterEventType.RUN_SUCCESS)
    assert _iterate(queue) == [backup]  # one at a time: the restore check waits for the backup
    assert _iterate(queue) == []
    _report(instance, backup, DagsterEventType.RUN_SUCCESS)
    # and a reset waits for a backup or restore check in progress
    second_reset = _submit(instance, "reset_job")
    assert _iterate(queue) == [restore_check]
    assert _iterate(queue) == [] and _status(instance, second_reset) == QUEUED
    _report(instance, restore_check, DagsterEventType.RUN_SUCCESS)
    assert _iterate(queue) == [second_reset]


@pytest.mark.integration
def test_one_sync_per_index_limits_a_run_only_against_the_indices_it_touches(queue, instance):
    erase = _submit(instance, "gdpr_erase_job")  # syncs workflows and executions
    sync_all = _submit(instance, "search_sync_job")  # every index: waits for the erasure
    # a run touching only audit_logs (as a per-index job would be tagged) does not wait for it
    audit_only = _submit(instance, "health_job", tags=queue_tags.sync_tags(["audit_logs"]))
    full_loads = [_submit(instance, "health_job", tags=queue_tags.SEARCH_FULL_LOAD_TAGS) for _ in range(2)]
    assert _iterate(queue) == [erase, audit_only, *full_loads]  # the full load's partitions run side by side
    assert _status(instance, sync_all) == QUEUED
    for run_id in (erase, audit_only, *full_loads):
        _report(instance, run_id, DagsterEventType.RUN_SUCCESS)
    assert _iterate(queue) == [sync_all]


@pytest.mark.integration
def test_reset_refuses_while_a_search_full_load_runs(queue, instance):
    """The queue cannot keep them apart without serializing the load's partitions: the reset refuses."""
    load = _submit(instance, "health_job", tags=queue_tags.SEARCH_FULL_LOAD_TAGS)
    assert _iterate(queue) == [load]
    result = defs.resolve_job_def("reset_job").execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"ops": {"reset_data_layer": {"config": {"confirm": True}}}})
    assert not result.success
    refusal = result.failure_data_for_node("reset_data_layer").user_failure_data.description
    assert "search full load" in refusal and load in refusal
