"""gdpr_export_job and gdpr_erase_job on the real servers: metadata without personal data, config
refused before anything changes, and the production guard."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from definitions import defs
from orchestrator_data.postgres import client
from orchestrator_data.gdpr.ledger import ErasureLedger
from resources import BackupStorageResource, DeploymentResource, ElasticsearchResource, PostgresResource, RedisResource
from tests.gdpr_people import seed_people

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(migrated_url, tmp_path):
    engine = client.create_engine(migrated_url, pool=client.PoolOptions(size=1, max_overflow=0))
    people = seed_people(engine)
    prefix = f"g{uuid.uuid4().hex[:10]}"  # no index under it: search has nothing to sync
    resources = {"postgres": PostgresResource(database_url=migrated_url), "redis": RedisResource(),
                 "elasticsearch": ElasticsearchResource(index_prefix=prefix),
                 "backup_storage": BackupStorageResource(backup_dir=str(tmp_path / "backups"))}
    yield engine, people, resources
    engine.dispose()


def _run(job: str, resources: dict, config: dict, environment: str = "testing"):
    op = {"gdpr_export_job": "gdpr_export", "gdpr_erase_job": "gdpr_erase"}[job]
    return defs.resolve_job_def(job).execute_in_process(
        resources={**resources, "deployment": DeploymentResource(environment=environment)},
        run_config={"ops": {op: {"config": config}}}, raise_on_error=False)


def _metadata(result, op: str) -> dict:
    (event,) = [e for e in result.all_node_events if e.is_successful_output or e.is_step_failure]
    if event.is_step_failure:
        return {k: v.value for k, v in event.step_failure_data.user_failure_data.metadata.items()}
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def _users(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one()


def test_export_job_writes_the_file_and_only_counts_into_metadata(setup, tmp_path):
    engine, people, resources = setup
    target = tmp_path / "export.json"
    result = _run("gdpr_export_job", resources, {"user_id": str(people.person.id), "requested_by": "dpo@test",
                                                 "output": str(target)})
    assert result.success
    assert json.loads(target.read_text())["user"]["email"] == people.person.email
    metadata = _metadata(result, "gdpr_export")
    assert metadata["rows_workflows"] == 1 and metadata["rows_executions"] == 1 and metadata["duration_s"] >= 0
    assert people.person.email not in json.dumps(metadata, default=str)


def test_erase_job_guards_production_and_reports_rows_per_table(setup, tmp_path):
    engine, people, resources = setup
    config = {"user_id": str(people.person.id), "requested_by": "dpo@test"}
    refused = _run("gdpr_erase_job", resources, config, environment="production")
    assert not refused.success
    assert refused.failure_data_for_node("gdpr_erase").user_failure_data.description == (
        f"refusing to erase user {people.person.id} in production: the erasure cannot be undone; "
        "set config confirm: true in the launchpad")
    assert _users(engine) == 2
    malformed = _run("gdpr_erase_job", resources, {**config, "user_id": "ada@example.org"})
    assert not malformed.success and _users(engine) == 2
    failure = malformed.failure_data_for_node("gdpr_erase").user_failure_data.description
    assert "must be a user id" in failure and "ada@example.org" not in failure
    done = _run("gdpr_erase_job", resources, {**config, "confirm": True}, environment="production")
    assert done.success and _users(engine) == 1
    metadata = _metadata(done, "gdpr_erase")
    assert metadata["postgres_users"] == 1 and metadata["postgres_executions"] == 1
    assert "redis_sessions" in metadata and metadata["already_erased"] is False
    # recorded outside the database too, beside the backups
    ledger = ErasureLedger(tmp_path / "backups" / "gdpr-ledger.jsonl")
    assert [(e.user_id, e.request_id) for e in ledger.read().entries] == [(people.person.id, metadata["request_id"])]
    assert metadata["ledger_file"] == str(ledger.path)
    again = _run("gdpr_erase_job", resources, config)
    assert not again.success
    assert "already erased" in again.failure_data_for_node("gdpr_erase").user_failure_data.description
    # a ledger that cannot be written fails the step, naming the file, and erases nobody
    blocked = {**resources, "backup_storage": BackupStorageResource(backup_dir=str(tmp_path / "backups-elsewhere"))}
    (tmp_path / "backups-elsewhere" / "gdpr-ledger.jsonl").mkdir(parents=True)
    failed = _run("gdpr_erase_job", blocked, {**config, "user_id": str(people.colleague.id)})
    assert not failed.success and _users(engine) == 1
    assert "cannot be written" in failed.failure_data_for_node("gdpr_erase").user_failure_data.description
