"""The redis_keyspace asset and its TTL check, materialized against the real Redis."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from assets.redis import REDIS_ASSET_CHECKS, REDIS_ASSETS, check_redis_keyspace_ttl, redis_keyspace
from orchestrator_data.redis.keyspace import QUEUE_TYPES, SESSION
from orchestrator_data.redis.sessions import SessionStore
from orchestrator_data.stack.common import free_port
from resources import RedisResource

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _materialize(resource: RedisResource | None = None, raise_on_error: bool = True):
    return dg.materialize([*REDIS_ASSETS, *REDIS_ASSET_CHECKS], resources={"redis": resource or RedisResource()},
                          raise_on_error=raise_on_error)


def test_redis_keyspace_materializes_what_a_dba_reads(stack):
    sessions = SessionStore(RedisResource().client)
    user = f"asset-{uuid.uuid4().hex[:8]}"
    session = sessions.create(user)
    try:
        result = _materialize()
    finally:
        sessions.revoke_user(user)
    assert result.success
    [materialization] = result.asset_materializations_for_node("redis_keyspace")
    metadata = materialization.metadata
    assert metadata["server"].value.startswith(("redis 7", "valkey"))
    assert metadata["maxmemory_policy"].value == "noeviction"
    assert metadata["memory/used_bytes"].value > 0 and metadata["memory/max_bytes"].value > 0
    rows = {r.data["pattern"]: r.data for r in metadata["keys"].value.records}
    assert set(rows) >= {"session:{session_id}", "cache:{type}:{id}", "rate_limit:{identifier}:{window}",
                         "execution:status:{execution_id}", "queue:{type}"}
    assert rows["session:{session_id}"]["keys"] >= 1 and rows["session:{session_id}"]["eviction"] == "never"
    assert rows["queue:{type}"]["keys"] >= len(QUEUE_TYPES)
    queues = {r.data["queue"] for r in metadata["queues"].value.records}
    assert {f"queue:{t}" for t in QUEUE_TYPES} <= queues
    assert metadata["queue/executions/length"].value >= 0
    assert "serves both the cache and sessions" in metadata["warnings"].value
    scripts = {r.data["script"]: r.data["sha1"] for r in metadata["scripts"].value.records}
    assert len(scripts) == 9 and all(len(sha) == 40 for sha in scripts.values())
    assert metadata["memory/used"].value.endswith("iB")  # beside the byte count, in binary units
    assert session.id not in str(metadata)  # session ids are bearer tokens
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"ttl": True}
    # the server has served reads (the session above): its hit ratio, as a percentage
    assert 0 <= metadata["server/hit_pct"].value <= 100 and not [k for k in metadata if k.endswith("hit_rate")]


def test_the_check_flags_keys_without_the_ttl_the_registry_requires(stack):
    client = RedisResource().client
    leak = SESSION.key(session_id=f"leak-{uuid.uuid4().hex}")
    client.hset(leak, "user_id", "someone")  # no TTL: this session would live forever
    try:
        result = dg.materialize([redis_keyspace, check_redis_keyspace_ttl], resources={"redis": RedisResource()},
                                selection=dg.AssetSelection.checks(check_redis_keyspace_ttl))
    finally:
        client.delete(leak)
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    metadata = evaluation.metadata
    [row] = [r.data for r in metadata["violations"].value.records if r.data["pattern"] == "session:{session_id}"]
    assert row["keys"] >= 1 and row["rule"] == "must have a TTL" and "session:***" in row["samples"]
    assert leak not in str(metadata)
    total = metadata["violating_keys"].value
    assert evaluation.description.startswith(f"{total:,} key(s) break the registry's TTL rule (")
    assert "session:{session_id} must have a TTL: " in evaluation.description and leak not in evaluation.description
    assert evaluation.description.endswith("; repair: fix the writer that set them, then expire or delete them")
    assert metadata["runbook"].value == "docs/runbook.md#redis_keyspace-ttl"


def test_an_unreachable_redis_fails_the_asset_with_a_clear_message_and_no_password(stack):
    resource = RedisResource(redis_url=f"redis://:HiddenRedisPw9@127.0.0.1:{free_port()}/0", retries=0)
    result = _materialize(resource, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("redis_keyspace")
    description = failure.user_failure_data.description
    assert "Redis is unavailable" in description and "HiddenRedisPw9" not in description
