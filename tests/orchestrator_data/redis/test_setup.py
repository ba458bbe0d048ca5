"""Setting up and checking the server against the registry: version, scripts, consumer groups,
configuration (maxmemory policy, shared cache, persistence), keys per pattern and TTL violations."""

from __future__ import annotations

import pytest

from orchestrator_data.redis.cache import Cache
from orchestrator_data.redis.client import create_client
from orchestrator_data.redis.errors import RedisUnavailable
from orchestrator_data.redis.keyspace import CACHE, EXECUTION_STATUS, QUEUE, QUEUE_TYPES, SESSION
from orchestrator_data.redis.ratelimit import GCRA_LUA
from orchestrator_data.redis.sessions import SessionStore
from orchestrator_data.redis.setup import (
    SCRIPTS,
    check_configuration,
    inspect_keyspace,
    redis_status,
    scan_keyspace,
    setup_redis,
)

pytestmark = pytest.mark.timeout(30)

INFO = {"redis_version": "7.0.15", "redis_mode": "standalone", "maxmemory_policy": "noeviction",
        "maxmemory": 512 * 2**20, "used_memory": 2**20, "aof_enabled": 1}


def test_a_fitting_server_has_no_problems():
    warnings, problems = check_configuration(INFO, rdb_saves=True, serves_cache=False)
    assert (warnings, problems) == ([], [])


def test_one_version_label_names_the_server_and_the_protocol_it_speaks():
    from orchestrator_data.redis.client import server_version

    assert server_version(INFO) == "redis 7.0.15"
    assert server_version(INFO | {"redis_version": "7.2.4", "valkey_version": "9.1.0"}) == "valkey 9.1.0 (redis 7.2.4)"


def test_valkey_reports_redis_7_2_and_is_accepted():
    _, problems = check_configuration(INFO | {"redis_version": "7.2.4", "valkey_version": "9.1.0"}, True)
    assert problems == []


@pytest.mark.parametrize("change,needle", [
    ({"redis_version": "6.2.14"}, "needs Redis >= 7"),
    ({"maxmemory_policy": "allkeys-lru"}, "maxmemory-policy is allkeys-lru"),
    ({"maxmemory_policy": "volatile-lru"}, "session:{session_id}"),  # sessions have TTLs: volatile-* evicts them
    ({"redis_mode": "cluster"}, "cluster mode"),
])
def test_configurations_that_endanger_the_state_are_problems(change, needle):
    _, problems = check_configuration(INFO | change, rdb_saves=True)
    assert any(needle in p for p in problems), problems


def test_warnings_for_a_shared_cache_no_maxmemory_full_memory_and_no_persistence():
    warnings, problems = check_configuration(INFO, rdb_saves=True, serves_cache=True)
    assert problems == [] and "serves both the cache and sessions" in warnings[0]
    warnings, _ = check_configuration(INFO | {"maxmemory": 0}, True, serves_cache=False)
    assert "maxmemory is not set" in warnings[0]
    warnings, _ = check_configuration(INFO | {"used_memory": 500 * 2**20}, True, serves_cache=False)
    assert "98% of maxmemory" in warnings[0]
    warnings, _ = check_configuration(INFO | {"aof_enabled": 0}, rdb_saves=False, serves_cache=False)
    assert "no persistence" in warnings[0]
    assert check_configuration(INFO | {"aof_enabled": 0}, rdb_saves=None, serves_cache=False)[0] == []


@pytest.mark.integration
def test_setup_loads_scripts_creates_groups_and_reports(client, uid):
    client.script_flush()
    report = setup_redis(client)
    assert report.ok, report.keyspace.problems
    assert set(report.scripts) == set(SCRIPTS) and len(SCRIPTS) == 9
    assert report.scripts["ratelimit.gcra"] == client.register_script(GCRA_LUA).sha
    assert all(client.script_exists(*report.scripts.values()))
    again = setup_redis(client)
    assert again.groups_created == [] and again.groups_existing == [QUEUE.key(type=t) for t in QUEUE_TYPES]
    keyspace = again.keyspace
    assert keyspace.server.startswith(("redis 7", "valkey")) and keyspace.maxmemory_policy == "noeviction"
    assert keyspace.used_memory_bytes > 0 and keyspace.maxmemory_bytes > 0
    assert set(keyspace.queues) >= set(QUEUE_TYPES) and all(keyspace.queues[t].group_exists for t in QUEUE_TYPES)
    assert set(keyspace.patterns) == {"session", "user_sessions", "cache", "cache_lock", "cache_stats",
                                      "rate_limit", "execution_status", "queue", "dead_letter"}
    assert keyspace.patterns["queue"].keys >= 3


@pytest.mark.integration
def test_keys_per_pattern_and_ttl_violations_are_counted(client, uid):
    sessions = SessionStore(client)
    live = [sessions.create(f"u{uid}") for _ in range(3)]
    before = inspect_keyspace(client)
    Cache(client).set(f"t{uid}", 1, {"v": 1})
    leak = SESSION.key(session_id=f"leak{uid}")
    client.hset(leak, "user_id", "nobody")  # a session without a TTL: it would never go away
    wrong = EXECUTION_STATUS.key(execution_id=f"wrong{uid}")
    client.set(wrong, "not a hash", ex=60)
    expiring_queue = QUEUE.key(type=f"expiring{uid}")
    client.xadd(expiring_queue, {"payload": "{}"})
    client.expire(expiring_queue, 60)  # a queue that would vanish with its messages
    client.set(f"stray:{uid}", "x", ex=60)
    try:
        after = inspect_keyspace(client)
        assert after.patterns["session"].keys - before.patterns["session"].keys == 1
        assert after.patterns["user_sessions"].keys >= 1 and after.patterns["cache"].keys >= 1
        assert after.patterns["session"].without_ttl == before.patterns["session"].without_ttl + 1
        assert "session:***" in after.patterns["session"].samples  # session ids are secrets
        assert not any(s.id in str(after) for s in live)
        assert after.patterns["execution_status"].wrong_type == before.patterns["execution_status"].wrong_type + 1
        assert after.patterns["queue"].unexpected_ttl == before.patterns["queue"].unexpected_ttl + 1
        assert f"expiring{uid}" in after.queues  # an undeclared queue found by the scan is reported
        assert after.unregistered_keys >= 1
        assert after.ttl_violations["session"] >= 1 and after.ok  # a warning, not a problem
        assert any("have no TTL" in w for w in after.warnings)
        assert after.patterns["session"].memory_bytes_estimate > 0
    finally:
        client.delete(leak, wrong, expiring_queue, f"stray:{uid}", CACHE.key(type=f"t{uid}", id=1))
        sessions.revoke_user(f"u{uid}")


@pytest.mark.integration
def test_a_partial_scan_says_so(client, uid):
    client.set(f"stray:{uid}:1", 1, ex=60)
    client.set(f"stray:{uid}:2", 1, ex=60)
    result = scan_keyspace(client, batch=1, limit=1)
    assert not result.complete and 1 <= result.scanned < client.dbsize()


@pytest.mark.integration
def test_an_evicting_policy_is_a_problem_on_a_real_server(own_redis):
    client = create_client(own_redis.url())
    client.config_set("maxmemory-policy", "allkeys-lru")
    report = setup_redis(client)
    assert not report.ok and "maxmemory-policy is allkeys-lru" in report.keyspace.problems[0]
    client.close()


@pytest.mark.integration
def test_status_for_the_cli(client, uid):
    cache = Cache(client)
    cache.get_or_load(f"s{uid}", 1, lambda: 1)
    cache.get_or_load(f"s{uid}", 1, lambda: 1)
    cache.flush_stats()
    status = redis_status(client)
    assert status.ok and status.error is None
    record = status.as_dict()
    assert record["used_memory_bytes"] > 0 and record["maxmemory_policy"] == "noeviction"
    assert record["cache_hits"] >= 1 and record["cache_misses"] >= 1 and 0 < record["cache_hit_rate"] < 1
    assert set(record["queues"]) == set(QUEUE_TYPES)
    assert set(record["queues"]["executions"]) >= {"length", "pending", "backlog", "consumers", "dead_letters"}
    cache.invalidate(f"s{uid}", 1)
    client.hdel("cache_stats", f"s{uid}:hits", f"s{uid}:misses")


@pytest.mark.integration
def test_status_and_setup_against_a_dead_server(dead_url):
    client = create_client(dead_url, retries=0, socket_timeout=1)
    status = redis_status(client)
    assert not status.ok and "Redis is unavailable" in status.error and "DeadPortSecret42" not in status.error
    with pytest.raises(RedisUnavailable):
        setup_redis(client)
