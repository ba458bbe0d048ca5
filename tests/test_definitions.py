"""The code location loads, every job resolves, and Dagster's own storage lives in PostgreSQL."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from orchestrator_data.urls import dagster_postgres_url
from tests.conftest import PROJECT_ROOT


def test_definitions_load_and_every_job_resolves():
    from definitions import defs

    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"bootstrap_job", "health_job"} <= jobs
    assert defs.resolve_schedule_def("health_schedule").default_status == dg.DefaultScheduleStatus.STOPPED
    defs.resolve_asset_graph()


@pytest.mark.integration
def test_bootstrap_job_runs_on_a_postgres_backed_instance(stack, endpoints, tmp_path, monkeypatch):
    """dagster.yaml keeps runs and events in PostgreSQL (dagster-postgres via psycopg2)."""
    from definitions import defs

    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_postgres_url(endpoints.dagster_pg_url))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = defs.resolve_job_def("bootstrap_job").execute_in_process(instance=instance)
        assert result.success
        stored = instance.get_run_by_id(result.run_id)
        assert stored is not None and stored.is_success
        assert instance.get_latest_materialization_event(dg.AssetKey("service_health")) is not None
