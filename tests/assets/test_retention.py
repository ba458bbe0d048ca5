"""The retention_purge asset and retention_job on the real servers: run config checked before the run,
a dry run that changes nothing, the purge with its metadata, production refused without confirm."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.retention import retention_purge
from jobs import retention_job
from resources import DeploymentResource, ElasticsearchResource, PostgresResource

from tests.retention_data import KEEP_ALL, OLD_EXECUTIONS, policy_dir, scalar, seeded_for_retention

pytestmark = pytest.mark.integration


@pytest.fixture
def seeded(engine):
    return seeded_for_retention(engine)


def _resources(migrated_url, directory, environment="testing") -> dict:
    return {"postgres": PostgresResource(database_url=migrated_url, retention_dir=str(directory)),
            "elasticsearch": ElasticsearchResource(index_prefix="retention_none"),  # no audit index: nothing to delete
            "deployment": DeploymentResource(environment=environment)}


def _config(**values) -> dict:
    return {"ops": {"retention_purge": {"config": values}}}


@pytest.fixture
def directory(tmp_path):
    return policy_dir(tmp_path, **(KEEP_ALL | {"executions": {"delete_after": "90d", "batch_size": 50}}))


def _job(resources):
    return dg.Definitions(assets=[retention_purge], jobs=[retention_job], resources=resources).resolve_job_def(
        "retention_job")


def test_dry_run_then_purge_with_rows_per_table_and_system(seeded, migrated_url, directory):
    resources = _resources(migrated_url, directory)
    dry = dg.materialize([retention_purge], resources=resources, run_config=_config(dry_run=True))
    meta = dry.asset_materializations_for_node("retention_purge")[0].metadata
    assert meta["dry_run"].value is True and meta["postgres_executions_past_horizon"].value == OLD_EXECUTIONS
    assert scalar(seeded.engine, "SELECT count(*) FROM executions") == seeded.executions

    done = _job(resources).execute_in_process(run_config=_config())
    assert done.success
    meta = done.asset_materializations_for_node("retention_purge")[0].metadata
    assert meta["rows_purged"].value == OLD_EXECUTIONS and meta["postgres_executions_purged"].value == OLD_EXECUTIONS
    rows = {r.data["table"]: r.data for r in meta["tables"].value.records if r.data["system"] == "postgres"}
    assert (rows["executions"]["purged"], rows["executions"]["batches"]) == (OLD_EXECUTIONS, 3)
    assert rows["audit_logs"]["action"] == "kept (no policy)"
    assert meta["duration_s"].value > 0
    assert scalar(seeded.engine, "SELECT count(*) FROM executions") == seeded.executions - OLD_EXECUTIONS


def test_bad_run_config_is_refused_before_the_run(seeded, migrated_url, directory):
    with pytest.raises(dg.DagsterInvalidConfigError):
        _job(_resources(migrated_url, directory)).execute_in_process(run_config=_config(confrim=True))
    with pytest.raises(dg.DagsterInvalidConfigError):
        _job(_resources(migrated_url, directory)).execute_in_process(run_config=_config(dry_run="maybe"))
    assert scalar(seeded.engine, "SELECT count(*) FROM executions") == seeded.executions


def test_production_without_confirm_fails_and_nothing_changes(seeded, migrated_url, directory, tmp_path):
    job = _job(_resources(migrated_url, directory, environment="production"))
    refused = job.execute_in_process(run_config=_config(), raise_on_error=False)
    assert not refused.success
    assert refused.get_step_failure_events()[0].event_specific_data.error.message.strip().endswith(
        "refusing to purge production data unless you set config confirm: true in the launchpad "
        "(a dry run shows what would go)")
    assert scalar(seeded.engine, "SELECT count(*) FROM executions") == seeded.executions

    bad = policy_dir(tmp_path / "bad", executions={"delete_after": "90d", "batch_size": -1})
    invalid = _job(_resources(migrated_url, bad)).execute_in_process(run_config=_config(), raise_on_error=False)
    assert "'batch_size'" in invalid.get_step_failure_events()[0].event_specific_data.error.message
    assert scalar(seeded.engine, "SELECT count(*) FROM executions") == seeded.executions

    assert job.execute_in_process(run_config=_config(confirm=True)).success
    assert scalar(seeded.engine, "SELECT count(*) FROM executions") == seeded.executions - OLD_EXECUTIONS
