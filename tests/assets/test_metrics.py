"""The system_metrics asset, materialized with real resources on the test stack."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import dagster as dg
import pytest

from assets.metrics import METRICS_ASSET_CHECKS, METRICS_ASSETS, SAMPLED_AT_TAG, WHOLE
from assets.search import SEARCH_INDEX_ASSETS
from orchestrator_data.search.indices import Layout, drop_indices
from orchestrator_data.stack.common import free_port
from resources import ElasticsearchResource, PostgresResource, RedisResource

pytestmark = pytest.mark.integration

# ratios as percentages, rates with their unit in the name
HEADLINE = {"pg_connections", "pg_cache_hit_pct", "pg_database_bytes", "redis_used_memory_bytes", "redis_hit_pct",
            "redis_clients", "queue_depth_total", "es_heap_used_pct", "es_documents", "es_store_bytes",
            "samples_written", "duration_s"}
RATES = {"es_queries_per_s", "es_docs_indexed_per_s", "pg_commits_per_s", "pg_rollbacks_per_s"}


@pytest.fixture
def resources(migrated_url):
    prefix = f"m{uuid.uuid4().hex[:10]}"
    elasticsearch = ElasticsearchResource(index_prefix=prefix)
    yield {"postgres": PostgresResource(database_url=migrated_url), "redis": RedisResource(),
           "elasticsearch": elasticsearch}
    drop_indices(elasticsearch.client, Layout(prefix))
    elasticsearch.client.close()


def materialize(resources, **kwargs):
    return dg.materialize([*SEARCH_INDEX_ASSETS, *METRICS_ASSETS], resources=resources,
                          selection=dg.AssetSelection.assets("search_system_metrics_index", "system_metrics"),
                          **kwargs)


def test_the_asset_writes_samples_and_records_the_headline_numbers(resources):
    redis_client = resources["redis"].client
    redis_client.get("metrics-asset-test-miss")       # a read, so the server has a hit rate
    result = materialize(resources)
    assert result.success
    metadata = result.asset_materializations_for_node("system_metrics")[0].metadata
    assert HEADLINE <= set(metadata)
    assert not RATES & set(metadata)                   # the first run has no previous counters
    for key in HEADLINE:
        expected = dg.IntMetadataValue if key in WHOLE else dg.FloatMetadataValue
        assert isinstance(metadata[key], expected), key
    assert metadata["pg_connections"].value >= 1 and metadata["pg_database_bytes"].value > 0
    assert metadata["redis_used_memory_bytes"].value > 0 and 1 < metadata["es_heap_used_pct"].value < 100
    assert 0 <= metadata["pg_cache_hit_pct"].value <= 100 and 0 <= metadata["redis_hit_pct"].value <= 100
    assert not [key for key in metadata if key.endswith(("_ratio", "_rate", "_per_second"))]
    assert metadata["pg_stat_statements"].value.startswith("off: pg_stat_statements is not installed")
    assert {r.data["index"] for r in metadata["indices"].value.records} == {"system_metrics"}
    assert metadata["largest_tables"].value.records and "slowest_statements" not in metadata

    client, layout = resources["elasticsearch"].client, resources["elasticsearch"].layout()
    client.indices.refresh(index=layout.read_alias("system_metrics"))
    stored = client.count(index=layout.read_alias("system_metrics"))["count"]
    assert stored == metadata["samples_written"].value > 0

    # a run that carries the schedule's tag samples at that time: run twice, written once
    tags = {SAMPLED_AT_TAG: datetime(2026, 5, 1, 10, 35, tzinfo=UTC).isoformat()}
    first = materialize(resources, tags=tags).asset_materializations_for_node("system_metrics")[0].metadata
    again = materialize(resources, tags=tags).asset_materializations_for_node("system_metrics")[0].metadata
    assert first["sampled_at"].value == again["sampled_at"].value == "2026-05-01T10:35:00+00:00"
    assert first["samples_written"].value > 0 and again["samples_written"].value == 0

    # the next sample has the counters' previous readings: the rates, per second
    later = materialize(resources).asset_materializations_for_node("system_metrics")[0].metadata
    assert RATES <= set(later) and all(later[key].value >= 0 for key in RATES)


def test_the_freshness_check_reads_the_newest_sample(resources):
    never = dg.materialize([*SEARCH_INDEX_ASSETS, *METRICS_ASSETS, *METRICS_ASSET_CHECKS], resources=resources,
                           selection=dg.AssetSelection.assets("search_system_metrics_index")
                           | dg.AssetSelection.checks(*METRICS_ASSET_CHECKS))
    [empty] = never.get_asset_check_evaluations()
    assert not empty.passed
    assert empty.description == ("no written system metrics sample; repair: orchestrator-data metrics collect, "
                                 "and turn system_metrics_schedule on")
    assert empty.metadata["runbook"].value == "docs/runbook.md#system_metrics-freshness"
    sampled = dg.materialize([*SEARCH_INDEX_ASSETS, *METRICS_ASSETS, *METRICS_ASSET_CHECKS], resources=resources,
                             selection=dg.AssetSelection.assets("system_metrics")
                             | dg.AssetSelection.checks(*METRICS_ASSET_CHECKS))
    [fresh] = sampled.get_asset_check_evaluations()
    assert fresh.passed and fresh.metadata["age_hours"].value < 0.1
    assert fresh.description.startswith("newest written system metrics sample ") and "(limit 0.25 h)" in fresh.description


def test_a_server_down_fails_the_run_after_writing_the_others(resources):
    dead = {**resources, "redis": RedisResource(redis_url=f"redis://:HiddenPw77@127.0.0.1:{free_port()}/0",
                                                retries=0, socket_timeout=2)}
    result = materialize(dead, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure and e.step_key == "system_metrics"]
    description = failure.event_specific_data.error.message
    assert "redis" in description and "HiddenPw77" not in description
    client, layout = resources["elasticsearch"].client, resources["elasticsearch"].layout()
    client.indices.refresh(index=layout.read_alias("system_metrics"))
    services = client.search(index=layout.read_alias("system_metrics"), size=0,
                             aggs={"services": {"terms": {"field": "service"}}})["aggregations"]["services"]
    assert {b["key"] for b in services["buckets"]} == {"postgres", "elasticsearch"}
