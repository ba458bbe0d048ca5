"""search_snapshot_job on the real node: the snapshot and restore-check assets and their freshness checks,
retention through the asset, and a failing restore check failing the run with one line."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from assets.search import SEARCH_ASSETS
from assets.search_snapshots import SEARCH_SNAPSHOT_ASSET_CHECKS, SEARCH_SNAPSHOT_ASSETS
from jobs import search_snapshot_job
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import sync
from orchestrator_data.search.indices import NAMES, Layout, drop_indices
from orchestrator_data.search.snapshots import Repository
from resources import ElasticsearchResource, PostgresResource
from tests.search_snapshots import delete_repository

pytestmark = pytest.mark.integration


@pytest.fixture
def resources(migrated_url, engine):
    seed(engine, "testing", SeedPlan(executions=40))
    layout = Layout(f"n{uuid.uuid4().hex[:10]}")
    elasticsearch = ElasticsearchResource(index_prefix=layout.prefix)
    sync.create_indices(engine, elasticsearch.client, layout)
    sync.sync(engine, elasticsearch.client, layout)
    yield {"postgres": PostgresResource(database_url=migrated_url), "elasticsearch": elasticsearch}
    delete_repository(elasticsearch.client, Repository(f"{layout.prefix}-snapshots", layout.prefix))
    drop_indices(elasticsearch.client, layout)
    elasticsearch.client.close()


def _run_job(resources: dict, **kwargs) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions(assets=[*SEARCH_ASSETS, *SEARCH_SNAPSHOT_ASSETS], asset_checks=SEARCH_SNAPSHOT_ASSET_CHECKS,
                          jobs=[search_snapshot_job], resources=resources)
    return defs.resolve_job_def("search_snapshot_job").execute_in_process(**kwargs)


def test_the_job_snapshots_restore_checks_and_both_promises_hold(resources):
    result = _run_job(resources)
    assert result.success
    snapshot = result.asset_materializations_for_node("search_snapshot")[0].metadata
    name = snapshot["snapshot"].value
    assert name.startswith(resources["elasticsearch"].index_prefix + "-")
    assert snapshot["size_bytes"].value > 0 and snapshot["size"].value.endswith("B")
    assert snapshot["documents"].value == snapshot["dagster/row_count"].value > 40
    recorded = {r.data["backing_index"]: r.data["documents"] for r in snapshot["indices"].value.records}
    assert recorded["executions-v1-000001"] == 40 and len(recorded) == len(NAMES)
    assert snapshot["pruned"].value == "none" and snapshot["duration_s"].value >= 0

    check = result.asset_materializations_for_node("search_snapshot_restore_check")[0].metadata
    assert check["snapshot"].value == name and check["result"].value == "passed"
    rows = {r.data["index"]: r.data for r in check["indices"].value.records}
    assert rows["executions"]["recorded"] == rows["executions"]["restored"] == rows["executions"]["live"] == 40
    assert rows["executions"]["sampled"] == rows["executions"]["equal"] == 40 and rows["executions"]["ok"]
    evaluations = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    assert set(evaluations) == {("search_snapshot", "freshness"), ("search_snapshot_restore_check", "freshness")}
    assert all(c.passed for c in evaluations.values())
    assert evaluations[("search_snapshot_restore_check", "freshness")].metadata["newest_id"].value == name

    # retention through the asset: keep one, the first snapshot goes
    kept_one = {**resources, "elasticsearch": ElasticsearchResource(
        index_prefix=resources["elasticsearch"].index_prefix, snapshot_keep=1)}
    again = dg.materialize(SEARCH_SNAPSHOT_ASSETS, resources=kept_one, selection=[SEARCH_SNAPSHOT_ASSETS[0]])
    assert again.asset_materializations_for_node("search_snapshot")[0].metadata["pruned"].value == f"- {name}"


def test_a_failing_restore_check_fails_the_run_with_one_line(resources):
    assert dg.materialize(SEARCH_SNAPSHOT_ASSETS, resources=resources, selection=[SEARCH_SNAPSHOT_ASSETS[0]]).success
    es, layout = resources["elasticsearch"].client, resources["elasticsearch"].layout()
    alias = layout.read_alias("marketplace")
    for hit in es.search(index=alias, size=1000, version=True)["hits"]["hits"]:  # same version, other content
        es.index(index=hit["_index"], id=hit["_id"], version=hit["_version"], version_type="external_gte",
                 document={**hit["_source"], "summary": "tampered"})
    es.indices.refresh(index=alias)
    failed = dg.materialize(SEARCH_SNAPSHOT_ASSETS, resources=resources, raise_on_error=False,
                            selection=[SEARCH_SNAPSHOT_ASSETS[1]])
    assert not failed.success
    [failure] = failed.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("restore check of ") and "differs from the live one" in description
    assert "\n" not in description
    assert not list(es.indices.get(index=f"{layout.prefix}-restorecheck-*", allow_no_indices=True))


def test_before_any_snapshot_both_promises_fail_saying_what_to_run(resources):
    result = dg.materialize([*SEARCH_SNAPSHOT_ASSETS, *SEARCH_SNAPSHOT_ASSET_CHECKS], resources=resources,
                            selection=dg.AssetSelection.checks(*SEARCH_SNAPSHOT_ASSET_CHECKS))
    evaluations = {c.asset_key.to_user_string(): c for c in result.get_asset_check_evaluations()}
    snapshot, restore_checked = evaluations["search_snapshot"], evaluations["search_snapshot_restore_check"]
    assert not snapshot.passed and not restore_checked.passed
    assert snapshot.description == ("no successful search snapshot; repair: orchestrator-data search snapshot "
                                    "create, and turn daily_search_snapshot_schedule on")
    assert restore_checked.description == ("no restore-checked search snapshot; repair: orchestrator-data search "
                                           "snapshot restore-check latest")
    assert snapshot.metadata["runbook"].value == "docs/runbook.md#search_snapshot-freshness"
