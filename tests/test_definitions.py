"""The code location loads, every job resolves, and Dagster's own storage lives in PostgreSQL."""

from __future__ import annotations

import shutil

import dagster as dg
import psycopg
import pytest

from tests.conftest import PROJECT_ROOT


def test_definitions_load_and_every_job_resolves():
    from definitions import defs

    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"bootstrap_job", "health_job", "postgres_backup_job", "postgres_restore_check_job"} <= jobs
    assert defs.resolve_schedule_def("health_schedule").default_status == dg.DefaultScheduleStatus.STOPPED
    # outside production (the test session) the backup schedules and alert sensors start stopped
    for name in ("nightly_postgres_backup_schedule", "weekly_postgres_restore_check_schedule"):
        assert defs.resolve_schedule_def(name).default_status == dg.DefaultScheduleStatus.STOPPED
    for name in ("run_failure_alert_sensor", "stale_backup_sensor"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.STOPPED
    assert dg.AssetKey("postgres_backup") in defs.resolve_asset_graph().get_all_asset_keys()
    defs.resolve_asset_graph()


def test_few_groups_and_check_names_that_do_not_repeat_their_asset():
    from assets import keys
    from definitions import defs

    graph = defs.resolve_asset_graph()
    assert {graph.get(key).group_name for key in graph.get_all_asset_keys()} == set(keys.GROUPS)
    assert len(keys.GROUPS) == 5
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert ("search_audit_logs_documents", "reconciliation") in checks
    assert ("postgres_backup", "freshness") in checks and ("postgres_schema", "drift") in checks
    assert [name for asset, name in checks if asset in name or name.startswith("check_")] == []
    assert {job.name for job in defs.resolve_all_job_defs()} >= {"postgres_backup_job", "postgres_restore_check_job"}
    assert not {"backup_job", "restore_test_job"} & {job.name for job in defs.resolve_all_job_defs()}


def test_every_asset_the_cli_can_change_has_its_metadata_builder():
    from assets import records
    from definitions import defs

    assets = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert records.registered() <= assets
    # service_health and postgres_replication change nothing: `orchestrator-data status` reads the same
    # figures, records nothing
    assert assets - records.registered() == {"service_health", "postgres_replication"}


def test_every_asset_has_a_code_version_that_follows_its_code(monkeypatch):
    from assets import _metadata
    from definitions import defs
    from orchestrator_data.search import lifecycle

    graph = defs.resolve_asset_graph()
    versions = {key.to_user_string(): graph.get(key).code_version for key in graph.get_all_asset_keys()}
    assert all(versions.values()), [k for k, v in versions.items() if not v]
    before = _metadata.code_version(lifecycle)
    monkeypatch.setattr(_metadata.inspect, "getsource", lambda module: "changed")
    assert _metadata.code_version(lifecycle) != before
    # the backups' promises are freshness policies too, so the asset pages show them
    for name in ("postgres_backup", "postgres_restore_check"):
        assert graph.get(dg.AssetKey(name)).freshness_policy is not None, name


def test_a_failed_reconciliation_fails_the_bootstrap_and_the_sync():
    """The reconciliation checks are blocking and run in bootstrap_job and search_sync_job, so a wrong
    index fails those runs (tests/assets/test_search.py runs one on an index made wrong on purpose)."""
    from definitions import defs
    from orchestrator_data.search.sync import SYNCED

    reconciliations = {dg.AssetCheckKey(dg.AssetKey(f"search_{name}_documents"), "reconciliation") for name in SYNCED}
    graph = defs.resolve_asset_graph()
    assert all(graph.get_check_spec(key).blocking for key in reconciliations)
    for job in ("bootstrap_job", "search_sync_job"):
        assert reconciliations <= set(defs.resolve_job_def(job).asset_layer.asset_graph.asset_check_keys), job


def test_freshness_and_lineage_say_what_is_current_and_what_a_copy_holds():
    from definitions import defs
    from orchestrator_data.search.indices import NAMES
    from orchestrator_data.search.sync import SYNCED

    graph = defs.resolve_asset_graph()
    documents = [f"search_{name}_documents" for name in SYNCED]
    for name in [*documents, "search_snapshot", "search_snapshot_restore_check", "system_metrics", "service_health"]:
        assert graph.get(dg.AssetKey(name)).freshness_policy is not None, name
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert {(name, "freshness") for name in [*documents, "search_snapshot", "system_metrics"]} <= checks
    # a snapshot holds every index and the documents synced (and sampled) into them
    snapshot_holds = {key.to_user_string() for key in graph.get(dg.AssetKey("search_snapshot")).parent_keys}
    assert snapshot_holds == {*(f"search_{name}_index" for name in NAMES), *documents, "system_metrics"}
    # a backup holds the schema and the seeded rows
    assert graph.get(dg.AssetKey("postgres_backup")).parent_keys == {dg.AssetKey("postgres_schema"),
                                                                     dg.AssetKey("seed_data")}


def test_byte_counts_get_a_readable_twin():
    from assets._metadata import with_human_sizes

    shown = with_human_sizes({"size_bytes": 5 * 1024 ** 2, "memory/used_bytes": dg.MetadataValue.int(1536),
                              "total_bytes": 10, "total": "taken", "flag_bytes": True})
    assert shown["size"] == "5.0 MiB" and shown["memory/used"] == "1.5 KiB"
    assert shown["total_human"] == "10 B" and shown["total"] == "taken" and "flag" not in shown


@pytest.mark.integration
def test_bootstrap_job_runs_on_a_postgres_backed_instance(stack, tmp_path):
    """dagster.yaml keeps runs and events in PostgreSQL; with DAGSTER_PG_URL unset it finds the
    stack's `dagster` database, as `dagster dev -w workspace.yaml` does."""
    from definitions import defs

    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = defs.resolve_job_def("bootstrap_job").execute_in_process(instance=instance)
        assert result.success
        stored = instance.get_run_by_id(result.run_id)
        assert stored is not None and stored.is_success
        assert instance.get_latest_materialization_event(dg.AssetKey("service_health")) is not None
    with psycopg.connect(stack.endpoints().dagster_pg_url) as conn:
        [count] = conn.execute("SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,)).fetchone()
    assert count == 1


@pytest.mark.integration
def test_dagster_pg_url_wins_over_the_stack_in_any_scheme(stack, tmp_path, monkeypatch):
    from resources.dagster_storage import OrchestratorPostgresStorage

    plain = stack.endpoints().dagster_pg_url.replace("postgresql://", "postgres://")
    monkeypatch.setenv("DAGSTER_PG_URL", plain)
    storage = OrchestratorPostgresStorage.from_config_value(None, {})
    assert storage.postgres_url.startswith("postgresql+psycopg2://")
    assert storage.run_storage.get_runs_count() >= 0
