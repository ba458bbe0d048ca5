"""The search_lifecycle asset on the real node: it rolls over and deletes by the policies it is given,
records each condition against its threshold, and fails when an index is missing."""

from __future__ import annotations

import json
import time
import uuid

import dagster as dg
import pytest

from assets.search_lifecycle import search_lifecycle
from orchestrator_data.search import indices
from orchestrator_data.search.indices import Layout, drop_indices
from resources import ElasticsearchResource, PostgresResource

from tests.search_documents import METRICS, add_metrics_documents

pytestmark = pytest.mark.integration


def _policy(directory, delete_after: str) -> None:
    (directory / "system_metrics.json").write_text(json.dumps({
        "index": METRICS, "rollover": {"max_docs": 2}, "retention": {"delete_after": delete_after}}))


@pytest.fixture
def resources(migrated_url, tmp_path):
    _policy(tmp_path, "1h")
    prefix = f"l{uuid.uuid4().hex[:10]}"
    elasticsearch = ElasticsearchResource(index_prefix=prefix, lifecycle_dir=str(tmp_path))
    yield {"postgres": PostgresResource(database_url=migrated_url), "elasticsearch": elasticsearch}
    drop_indices(elasticsearch.client, Layout(prefix))
    elasticsearch.client.close()


def test_the_asset_rolls_over_then_retention_deletes_the_old_index(resources, tmp_path):
    es, layout = resources["elasticsearch"].client, resources["elasticsearch"].layout()
    indices.init_indices(es, layout)
    add_metrics_documents(es, layout, 3)
    first = indices.write_index(es, layout, METRICS)

    rolled = dg.materialize([search_lifecycle], resources=resources)
    assert rolled.success
    meta = rolled.asset_materializations_for_node("search_lifecycle")[0].metadata
    assert meta["rolled_over"].value == 1 and meta["deleted_indices"].value == 0
    assert f"{first} → {layout.backing(METRICS, 1, 2)}" in meta["rollovers"].value
    rows = [r.data for r in meta["rollover_conditions"].value.records]
    docs = next(r for r in rows if r["index"] == METRICS and r["condition"] == "max_docs")
    assert docs == {"index": METRICS, "condition": "max_docs", "value": "3", "threshold": "2", "met": True,
                    "outcome": f"rolled over → {layout.backing(METRICS, 1, 2)}"}
    assert {r["index"] for r in rows} == set(indices.NAMES)
    assert meta["duration_s"].value > 0

    _policy(tmp_path, "1s")  # read again by each run
    time.sleep(1.2)
    expired = dg.materialize([search_lifecycle], resources=resources)
    meta = expired.asset_materializations_for_node("search_lifecycle")[0].metadata
    assert meta["rolled_over"].value == 0 and meta["deleted_indices"].value == 1
    assert first in meta["deleted"].value
    actions = {r.data["backing_index"]: r.data["action"] for r in meta["backing_indices"].value.records}
    assert actions[layout.backing(METRICS, 1, 2)] == "write index"
    assert sorted(es.indices.get_alias(name=layout.read_alias(METRICS))) == [layout.backing(METRICS, 1, 2)]


def test_the_asset_fails_naming_missing_indices(resources):
    result = dg.materialize([search_lifecycle], resources=resources, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "missing" in str(failure.message) + str(getattr(failure.cause, "message", ""))


def test_a_bad_policy_fails_the_step_naming_the_file(resources, tmp_path):
    (tmp_path / "audit_logs.json").write_text('{"index": "audit_logs", "rollover": {"max_age": "forever"}}')
    result = dg.materialize([search_lifecycle], resources=resources, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert "audit_logs.json" in failure.message or "audit_logs.json" in str(failure.event_specific_data.error)
