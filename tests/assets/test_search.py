"""The search assets and their reconciliation checks, materialized on a seeded database and the real node."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.search import SEARCH_ASSET_CHECKS, SEARCH_ASSETS
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search.indices import Layout, drop_indices
from orchestrator_data.search.sources import SYNCED
from orchestrator_data.stack.common import free_port
from resources import ElasticsearchResource, PostgresResource

pytestmark = pytest.mark.integration


@pytest.fixture
def resources(migrated_url, engine):
    seed(engine, "testing", SeedPlan(executions=120))
    prefix = f"a{uuid.uuid4().hex[:10]}"
    elasticsearch = ElasticsearchResource(index_prefix=prefix)
    yield {"postgres": PostgresResource(database_url=migrated_url), "elasticsearch": elasticsearch}
    drop_indices(elasticsearch.client, Layout(prefix))
    elasticsearch.client.close()


def test_indices_then_documents_then_reconciliation(resources, engine):
    result = dg.materialize([*SEARCH_ASSETS, *SEARCH_ASSET_CHECKS], resources=resources,
                            selection=dg.AssetSelection.groups("search"))
    assert result.success
    index = result.asset_materializations_for_node("search_executions_index")[0].metadata
    assert index["created_now"].value is True and index["mapping_version"].value == 1
    [backing] = index["backing_indices"].value.records
    assert backing.data["write_index"] is True and backing.data["backing_index"].endswith("executions-v1-000001")

    documents = result.asset_materializations_for_node("search_executions_documents")[0].metadata
    assert documents["mode"].value == "full" and documents["documents_written"].value == 120
    assert documents["documents"].value == documents["postgres_rows"].value == 120
    assert documents["lag_rows"].value == 0 and documents["documents_per_s"].value > 0
    assert documents["dagster/row_count"].value == 120 and documents["size_bytes"].value > 0
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {f"check_search_{name}_reconciliation" for name in SYNCED}
    assert all(c.passed for c in checks.values())
    assert checks["check_search_executions_reconciliation"].metadata["sampled"].value == 120

    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE executions SET status = 'cancelled' WHERE id IN (SELECT id FROM executions LIMIT 4)"))
    again = dg.materialize([*SEARCH_ASSETS, *SEARCH_ASSET_CHECKS], resources=resources,
                           selection=dg.AssetSelection.assets("search_executions_documents"))
    meta = again.asset_materializations_for_node("search_executions_documents")[0].metadata
    assert meta["mode"].value == "incremental" and meta["documents_written"].value == 4


def test_a_sync_that_cannot_reach_the_node_fails_the_step(resources):
    assert dg.materialize(SEARCH_ASSETS, resources=resources,
                          selection=dg.AssetSelection.assets("search_workflows_index")).success
    dead = {**resources, "elasticsearch": ElasticsearchResource(
        elasticsearch_url=f"http://127.0.0.1:{free_port()}", index_prefix=resources["elasticsearch"].index_prefix,
        max_retries=0, request_timeout=2)}
    failed = dg.materialize(SEARCH_ASSETS, resources=dead, raise_on_error=False,
                            selection=dg.AssetSelection.assets("search_workflows_documents"))
    assert not failed.success
