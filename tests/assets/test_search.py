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
    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {(f"search_{name}_documents", check) for name in SYNCED
                           for check in ("reconciliation", "freshness")}
    assert all(c.passed for c in checks.values())
    reconciled = checks[("search_executions_documents", "reconciliation")]
    assert reconciled.metadata["sampled"].value == 120
    assert reconciled.description == ("executions: 120 documents equal 120 rows in 6 organization(s); "
                                      "120 sampled documents equal")
    assert reconciled.metadata["runbook"].value == "docs/runbook.md#search-documents-reconciliation"
    fresh = checks[("search_executions_documents", "freshness")]
    assert fresh.metadata["lag_rows"].value == 0 and fresh.metadata["limit_seconds"].value == 1800
    assert fresh.description.startswith("executions: 0 change(s) behind")

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


def _wrong_executions_index(es, layout: Layout, engine) -> None:
    """Two orphan documents (no row at all) and one document moved under another organization than its
    row's, written straight into Elasticsearch, as a rewrite behind the sync would leave them."""
    with engine.connect() as conn:
        [row_id, organization] = conn.execute(sa.text("SELECT id::text, organization_id::text FROM executions "
                                                      "ORDER BY id LIMIT 1")).one()
        other = conn.execute(sa.text("SELECT id::text FROM organizations WHERE id::text <> :org LIMIT 1"),
                             {"org": organization}).scalar_one()
    document = es.get(index=layout.read_alias("executions"), id=row_id)["_source"]
    write = layout.write_alias("executions")
    for _ in range(2):
        es.index(index=write, id=str(uuid.uuid4()), document=document)
    es.index(index=write, id=row_id, document=document | {"organization_id": other})
    es.indices.refresh(index=layout.read_alias("executions"))


def test_a_failed_reconciliation_fails_the_sync_run_with_one_line_saying_what_differs(resources, engine):
    """search_sync_job as Dagster runs it: the reconciliation check is blocking, so an index made wrong
    on purpose fails the run, and the check's description says what differs and what repairs it."""
    from jobs import search_sync_job

    defs = dg.Definitions(assets=SEARCH_ASSETS, asset_checks=SEARCH_ASSET_CHECKS, jobs=[search_sync_job],
                          resources=resources)
    assert dg.materialize([*SEARCH_ASSETS, *SEARCH_ASSET_CHECKS], resources=resources,
                          selection=dg.AssetSelection.groups("search")).success
    _wrong_executions_index(resources["elasticsearch"].client, resources["elasticsearch"].layout(), engine)

    result = defs.resolve_job_def("search_sync_job").execute_in_process(raise_on_error=False)
    assert not result.success
    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    failed = checks[("search_executions_documents", "reconciliation")]
    assert not failed.passed
    assert failed.description == ("executions: 2 document(s) without a row, 1 under another organization than "
                                  "their row; repair: orchestrator-data search sync --full --index executions")
    assert failed.metadata["runbook"].value == "docs/runbook.md#search-documents-reconciliation"
    # the other indices reconcile: only the wrong one fails
    assert all(c.passed for key, c in checks.items() if key[1] == "reconciliation" and "executions" not in key[0])
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["search_executions_documents_reconciliation"]
