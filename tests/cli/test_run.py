"""`orchestrator-data run`: a run launched through the code location, from the caller's directory,
ending in a summary of every asset and check of the job."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
from dagster._core.events import DagsterEventType
import psycopg
import pytest

from definitions import defs
from orchestrator_data import connections, urls
from orchestrator_data.search.indices import Layout, drop_indices
from orchestrator_data.settings import load_settings
from tests.databases import fresh_database

# `run` is tested as the process it is (its own DAGSTER_HOME, a code location, the run's steps, Dagster's
# output sent to a file): `cli_process`; only the config file check before all that runs in process.
RUN_LINE = re.compile(r"^Run ([0-9a-f-]{36}) of (\w+) (succeeded|failed) in [0-9.]+s$", re.MULTILINE)


def _instance() -> dg.DagsterInstance:
    """The instance the CLI used: its DAGSTER_HOME under the test stack's state directory."""
    return dg.DagsterInstance.from_config(str(Path(os.environ["ORCHESTRATOR_DATA_HOME"]) / "dagster_home"))


def _run_id(stdout: str, job: str) -> str:
    match = RUN_LINE.search(stdout)
    assert match, stdout
    assert match.group(2) == job
    return match.group(1)


@pytest.mark.integration
def test_run_is_listed_under_its_job_with_the_code_location_origin(cli_process, stack):
    result = cli_process("run", "health_job")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = _run_id(result.stdout, "health_job")
    assert f"http://127.0.0.1:3000/runs/{run_id}" in result.stdout
    # no Dagster log lines (DEBUG events, code server INFO) on the terminal without --verbose
    assert "DEBUG" not in result.stdout + result.stderr and "dagster.code_server" not in result.stdout + result.stderr
    with _instance() as instance:
        # what the job's page in the UI asks for: the job's runs in this code location's repository
        runs = instance.get_runs(dg.RunsFilter(job_name="health_job", tags={
            "dagster/code_location": "orchestrator_data"}))
        run = next(r for r in runs if r.run_id == run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["orchestrator-data/source"] == "cli"  # the runs list can tell CLI-started runs
        origin = run.remote_job_origin
        assert origin is not None and origin.location_name == "orchestrator_data"
        assert origin.repository_origin.repository_name == "__repository__"
        assert run.job_code_origin is not None  # what re-execution from the UI reconstructs the job from
        # a quick job: its steps ran in the run's own process, no subprocess per step
        assert instance.all_logs(run_id, of_type=DagsterEventType.STEP_WORKER_STARTED) == []
        assert len(instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)) == 3


def _selected(job_name: str) -> tuple[set[str], set[str]]:
    job = defs.resolve_job_def(job_name)
    assets = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    checks = {f"{key.asset_key.to_user_string()}:{key.name}" for key in job.asset_layer.asset_graph.asset_check_keys}
    return assets, checks


@pytest.mark.integration
def test_bootstrap_from_another_directory_uses_its_env_local_and_summarizes_every_asset_and_check(
        cli_process, stack, tmp_path):
    """The run reads the caller's .env.local (its database, Redis database and search prefix), not the
    project directory's; its summary names every asset and check of bootstrap_job."""
    prefix = "runcli"
    redis = urlsplit(stack.endpoints().redis_url)
    with fresh_database(stack, prefix="runcli") as database_url:
        (tmp_path / ".env.local").write_text(
            f"DATABASE_URL={database_url}\n"
            f"DAGSTER_PG_URL={stack.endpoints().dagster_pg_url}\n"
            f"REDIS_URL={urlunsplit((redis.scheme, redis.netloc, '/13', '', ''))}\n"
            f"SEARCH_INDEX_PREFIX={prefix}\n"
            "DAGSTER_WEBSERVER_URL=http://dagster.example:8080/\n")
        # in one process: a subprocess per step (a Python start and a code load each) is not what this tests
        (tmp_path / "run.yaml").write_text("ops:\n  seed_data:\n    config:\n      scale: 120\n"
                                           "execution:\n  config:\n    in_process: {}\n")
        try:
            result = cli_process("run", "bootstrap_job", "--config", "run.yaml", cwd=tmp_path, timeout=600)
            assert result.returncode == 0, result.stdout + result.stderr
            with psycopg.connect(urls.libpq_url(database_url)) as conn:
                assert conn.execute("SELECT count(*) FROM executions").fetchone()[0] == 120
        finally:
            client = connections.elasticsearch_client(load_settings())
            drop_indices(client, Layout(prefix))
            client.close()
    run_id = _run_id(result.stdout, "bootstrap_job")
    assert f"http://dagster.example:8080/runs/{run_id}" in result.stdout
    assets, checks = _selected("bootstrap_job")
    listed_assets = set(re.findall(r"^  ✓ (\w+)(?:  |$)", result.stdout, re.MULTILINE))
    listed_checks = set(re.findall(r"^  ✓ (\w+:\w+)  passed$", result.stdout, re.MULTILINE))
    assert listed_assets == assets
    assert listed_checks == checks


@pytest.mark.integration
def test_an_unknown_job_exits_2_listing_the_jobs(cli_process, stack):
    result = cli_process("run", "no_such_job")
    assert result.returncode == 2
    assert "no_such_job" in result.stderr and "bootstrap_job" in result.stderr and "health_job" in result.stderr


@pytest.mark.parametrize("content, problem", [
    ("ops: [\n", "is not valid YAML"),
    ("- a list\n", "must be a YAML mapping"),
    (None, "no such run config file"),
])
def test_a_bad_config_file_exits_2_naming_it(cli, tmp_path, content, problem):
    path = tmp_path / "run.yaml"
    if content is not None:
        path.write_text(content)
    result = cli("run", "health_job", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert str(path) in result.stderr and problem in result.stderr


@pytest.mark.integration
def test_config_that_does_not_fit_the_job_exits_2(cli_process, stack, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("ops:\n  no_such_op: {}\n")
    result = cli_process("run", "health_job", "--config", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr and "no_such_op" in result.stderr


@pytest.mark.integration
def test_a_failed_step_prints_its_error_in_a_line_and_exits_1(cli_process, stack):
    # reset_job refuses to run without confirm: its step fails with the reason, no stack trace
    result = cli_process("run", "reset_job")
    assert result.returncode == 1
    failure = [line for line in result.stdout.splitlines() if "step reset_data_layer failed" in line]
    # a run's config, not a flag: `run` has no --confirm (its --config file sets confirm: true)
    assert len(failure) == 1 and "set config confirm: true" in failure[0] and "--confirm" not in failure[0]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.integration
def test_from_failure_needs_a_failed_run_of_the_job(cli_process, stack):
    unknown = cli_process("run", "health_job", "--from-failure", "00000000-0000-4000-8000-000000000000")
    assert unknown.returncode == 2 and "no run with id" in unknown.stderr, unknown.stderr
    succeeded = cli_process("run", "health_job")
    run_id = _run_id(succeeded.stdout, "health_job")
    again = cli_process("run", "health_job", "--from-failure", run_id)
    assert again.returncode == 2 and "is success: only a failed or canceled run" in again.stderr, again.stderr
