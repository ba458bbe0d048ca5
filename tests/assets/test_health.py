"""The service_health asset and its checks, materialized against the real stack."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.health import check_service_latency, check_service_versions, service_health
from orchestrator_data.stack.common import free_port
from resources import ElasticsearchResource, PostgresResource, RedisResource, build_resources

pytestmark = pytest.mark.integration


def _redis_version() -> str:
    from orchestrator_data import connections
    from orchestrator_data.redis.client import server_version
    from orchestrator_data.settings import load_settings

    client = connections.redis_client(load_settings())
    info = client.info()
    client.close()
    assert int(info["redis_version"].split(".")[0]) >= 7
    return server_version(info)


def test_service_health_materializes_with_versions_and_latency(stack):
    result = dg.materialize([service_health, check_service_versions, check_service_latency],
                            resources=build_resources())
    assert result.success
    [materialization] = result.asset_materializations_for_node("service_health")
    metadata = materialization.metadata
    versions = {r.data["service"]: r.data["version"] for r in metadata["services"].value.records}
    assert int(versions["postgres"].split(".")[0]) >= 16
    assert versions["redis"] == _redis_version()  # the same label everywhere (keyspace, stack)
    assert versions["elasticsearch"].startswith("8.")
    assert not [key for key in metadata if key.endswith("/version")]  # in the table, not loose beside it
    for service in ("postgres", "redis", "elasticsearch"):
        assert metadata[f"{service}/latency_ms"].value > 0
    assert metadata["healthy"].value is True
    assert len(metadata["services"].value.records) == 3
    details = {(r.data["service"], r.data["figure"]): r.data["value"] for r in metadata["details"].value.records}
    assert details[("redis", "server")] == _redis_version()
    assert details[("redis", "used_memory_bytes")].endswith("iB")  # shown in binary units
    assert metadata["redis/used_memory"].value.endswith("iB") and metadata["redis/used_memory_bytes"].value > 0
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {name: e.passed for name, e in evaluations.items()} == {"versions": True, "latency": True}
    assert evaluations["versions"].description == (f"postgres {versions['postgres']}, redis {versions['redis']}, "
                                                   f"elasticsearch {versions['elasticsearch']}: supported")
    assert evaluations["latency"].description == "every server under 50 ms"
    assert evaluations["versions"].metadata["runbook"].value == "docs/runbook.md#service_health-versions"


def test_the_version_check_says_in_one_line_which_server_fails_and_what_to_do(stack):
    resources = {**build_resources(), "redis": RedisResource(redis_url=f"redis://:HiddenPw77@127.0.0.1:{free_port()}/0",
                                                              retries=0)}
    result = dg.materialize([service_health, check_service_versions, check_service_latency], resources=resources,
                            selection=dg.AssetSelection.checks(check_service_versions, check_service_latency),
                            raise_on_error=False)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    versions, latency = evaluations["versions"], evaluations["latency"]
    assert not versions.passed and not latency.passed
    assert versions.description.startswith("redis: ") and "\n" not in versions.description
    assert versions.description.endswith("; repair: bring the server up on a supported version, or point its URL at one")
    assert latency.description.startswith("redis unreachable (limit 50 ms); repair: ")
    assert "HiddenPw77" not in versions.description + latency.description


def test_service_health_fails_naming_the_unreachable_service_without_secrets(stack):
    resources = {
        "postgres": PostgresResource(),
        "redis": RedisResource(redis_url=f"redis://:HiddenPw77@127.0.0.1:{free_port()}/0", retries=0),
        "elasticsearch": ElasticsearchResource(),
    }
    result = dg.materialize([service_health], resources=resources, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("service_health")
    text = str(failure.user_failure_data.description)
    assert "redis" in text
    assert "HiddenPw77" not in text
    assert failure.user_failure_data.metadata["healthy"].value is False
