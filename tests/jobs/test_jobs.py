"""The jobs: what each selects, and reset_job and bootstrap_job run end to end on a fresh database."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa

from definitions import defs
from resources import DeploymentResource, ElasticsearchResource, PostgresResource, RedisResource
from orchestrator_data import connections
from orchestrator_data.search.indices import NAMES, Layout, drop_indices
from orchestrator_data.search.sources import SYNCED
from orchestrator_data.settings import load_settings
from tests.databases import fresh_database


def _selected(job_name: str) -> set[str]:
    job = defs.resolve_job_def(job_name)
    return {key.to_user_string() for key in job.asset_layer.executable_asset_keys}


def test_job_selections():
    search = {f"search_{name}_index" for name in NAMES} | {f"search_{name}_documents" for name in SYNCED}
    assert _selected("bootstrap_job") == {"service_health", "postgres_schema", "seed_data", "redis_keyspace"} | search
    assert _selected("search_sync_job") == {f"search_{name}_documents" for name in SYNCED}
    assert _selected("search_lifecycle_job") == {"search_lifecycle"}
    # both full loads in one partitioned job (one backfill covers both), never in bootstrap_job
    assert _selected("search_full_load_job") == {"search_executions_full_load", "search_audit_logs_full_load"}
    assert defs.resolve_job_def("search_full_load_job").partitions_def is not None
    assert _selected("migrate_job") == {"postgres_schema"}
    assert _selected("seed_job") == {"seed_data"}
    assert _selected("health_job") == {"service_health"}
    assert _selected("postgres_backup_job") == {"postgres_backup"}
    assert _selected("postgres_restore_check_job") == {"postgres_restore_check"}
    assert _selected("system_metrics_job") == {"system_metrics"}


def test_quick_jobs_run_in_process_and_the_rest_in_subprocesses():
    assert defs.resolve_job_def("health_job").executor_def.name == "in_process"
    assert defs.resolve_job_def("bootstrap_job").executor_def.name == "multi_or_in_process_executor"


def test_dagster_executor_celery_puts_the_watched_celery_executor_on_the_jobs():
    from runtime.executors import executor_for
    from orchestrator_data.settings import load_settings

    assert executor_for(load_settings(DAGSTER_EXECUTOR="celery")).name == "celery"
    assert executor_for(load_settings(DAGSTER_EXECUTOR="multiprocess")).name == "multi_or_in_process_executor"


PREFIX = "jobs"


def _resources(stack, url: str) -> dict:
    parts = urlsplit(stack.endpoints().redis_url)
    redis_url = urlunsplit((parts.scheme, parts.netloc, "/12", "", ""))
    return {"postgres": PostgresResource(database_url=url), "redis": RedisResource(redis_url=redis_url),
            "elasticsearch": ElasticsearchResource(index_prefix=PREFIX), "deployment": DeploymentResource()}


def _search_documents() -> dict[str, int]:
    client = connections.elasticsearch_client(load_settings())
    try:
        client.indices.refresh(index=f"{PREFIX}-*")
        return {name: client.count(index=Layout(PREFIX).read_alias(name))["count"] for name in NAMES}
    finally:
        client.close()


@pytest.mark.integration
def test_bootstrap_job_then_reset_job(stack):
    with fresh_database(stack, prefix="jobs") as url:
        resources = _resources(stack, url)
        bootstrap = defs.resolve_job_def("bootstrap_job")
        result = bootstrap.execute_in_process(
            resources=resources,
            run_config={"ops": {"seed_data": {"config": {"scale": 200, "environment": "testing"}}}},
        )
        assert result.success
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM executions")).scalar_one() == 200
        # the indices were created and synced in full
        assert _search_documents()["executions"] == 200
        reconciliations = [c for c in result.get_asset_check_evaluations() if c.check_name == "reconciliation"]
        assert len(reconciliations) == len(SYNCED) and all(c.passed for c in reconciliations)

        not_confirmed = defs.resolve_job_def("reset_job").execute_in_process(resources=resources, raise_on_error=False)
        assert not not_confirmed.success
        # the launchpad's words, not the CLI's: a UI user has run config, not flags
        refusal = not_confirmed.failure_data_for_node("reset_data_layer").user_failure_data.description
        assert refusal.endswith("; set config confirm: true in the launchpad") and "--confirm" not in refusal
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM executions")).scalar_one() == 200

        reset = defs.resolve_job_def("reset_job").execute_in_process(
            resources=resources, run_config={"ops": {"reset_data_layer": {"config": {"confirm": True}}}})
        assert reset.success
        keys = {event.asset_key.to_user_string() for event in reset.get_asset_materialization_events()}
        assert keys == {"postgres_schema", "redis_keyspace"} | {f"search_{name}_index" for name in NAMES}
        # the asset's own metadata, as `orchestrator-data reset` records it (the same builder)
        recorded = {m.asset_key.to_user_string(): m.metadata
                    for m in reset.asset_materializations_for_node("reset_data_layer")}
        schema = recorded["postgres_schema"]
        assert schema["current_revision"].value == schema["head_revision"].value != "base"
        tables = {r.data["table"]: r.data for r in schema["tables"].value.records}
        assert {"executions", "_migration_history"} <= set(tables) and tables["executions"]["rows"] == 0
        assert not [key for key in schema if key.startswith("table/")]  # one table, not loose entries
        assert "scripts" in recorded["redis_keyspace"] and recorded["search_executions_index"]["created_now"].value
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM executions")).scalar_one() == 0
        engine.dispose()
        assert set(_search_documents().values()) == {0}
    client = connections.elasticsearch_client(load_settings())
    drop_indices(client, Layout(PREFIX))
    client.close()
