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
    assert int(metadata["postgres/version"].value.split(".")[0]) >= 16
    assert metadata["redis/version"].value == _redis_version()  # the same label everywhere (keyspace, stack)
    assert metadata["elasticsearch/version"].value.startswith("8.")
    for service in ("postgres", "redis", "elasticsearch"):
        assert metadata[f"{service}/latency_ms"].value > 0
    assert metadata["healthy"].value is True
    assert len(metadata["services"].value.records) == 3
    details = {(r.data["service"], r.data["figure"]): r.data["value"] for r in metadata["details"].value.records}
    assert details[("redis", "server")] == _redis_version()
    assert details[("redis", "used_memory_bytes")].endswith("iB")  # shown in binary units
    assert metadata["redis/used_memory"].value.endswith("iB") and metadata["redis/used_memory_bytes"].value > 0
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"versions": True, "latency": True}


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
