"""The read-through cache on the real server: TTL per type, hit/miss counters in Redis, invalidation
(also of a load in flight), stampede protection, and reads falling through when Redis is down."""

from __future__ import annotations

import threading
import time

import pytest

from orchestrator_data.redis.cache import Cache, CacheStats, read_stats
from orchestrator_data.redis.client import create_client
from orchestrator_data.redis.errors import RedisUnavailable
from orchestrator_data.redis.keyspace import CACHE, CACHE_LOCK

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


class Source:
    """A stand-in for the database: counts loads, optionally slow."""

    def __init__(self, value=None, delay: float = 0.0):
        self.value, self.delay, self.calls = value, delay, 0
        self._lock = threading.Lock()

    def load(self):
        with self._lock:
            self.calls += 1
            value = self.value  # read the row, then take time to "compute"
        time.sleep(self.delay)
        return value


def test_get_or_load_caches_with_the_types_ttl_and_counts_hits(client, cache_type):
    cache = Cache(client, ttls={cache_type: 30}, jitter=0)
    source = Source({"name": "flow", "steps": [1, 2]})
    assert cache.get_or_load(cache_type, 1, source.load) == {"name": "flow", "steps": [1, 2]}
    assert cache.get_or_load(cache_type, 1, source.load) == {"name": "flow", "steps": [1, 2]}
    assert cache.get_or_load(cache_type, 1, source.load) == {"name": "flow", "steps": [1, 2]}
    assert source.calls == 1
    assert 29_000 < client.pttl(CACHE.key(type=cache_type, id=1)) <= 30_000
    assert not client.exists(CACHE_LOCK.key(type=cache_type, id=1))
    assert cache.stats()[cache_type] == CacheStats(hits=2, misses=1)
    assert read_stats(client)[cache_type].hit_rate == pytest.approx(2 / 3)
    assert cache.get(cache_type, 2, default="none") == "none"
    assert cache.stats()[cache_type] == CacheStats(hits=2, misses=2)
    cache.invalidate(cache_type, 1)


def test_values_expire_after_their_ttl(client, cache_type):
    cache = Cache(client, ttls={cache_type: 1.0}, jitter=0.1)
    source = Source("v1")
    cache.get_or_load(cache_type, "a", source.load)
    assert 850 <= client.pttl(CACHE.key(type=cache_type, id="a")) <= 1100  # 1 s ± 10 % jitter
    cache.get_or_load(cache_type, "a", source.load)
    assert source.calls == 1
    time.sleep(1.2)
    source.value = "v2"
    assert cache.get_or_load(cache_type, "a", source.load) == "v2"
    assert source.calls == 2
    cache.invalidate(cache_type, "a")


def test_none_is_a_value_and_is_cached(client, cache_type):
    cache = Cache(client, ttls={cache_type: 30})
    source = Source(None)
    assert cache.get_or_load(cache_type, "missing-row", source.load) is None
    assert cache.get_or_load(cache_type, "missing-row", source.load) is None
    assert source.calls == 1
    cache.invalidate(cache_type, "missing-row")


def test_invalidation_when_the_source_row_changes(client, cache_type):
    cache = Cache(client, ttls={cache_type: 60})
    source = Source({"v": 1})
    assert cache.get_or_load(cache_type, 7, source.load) == {"v": 1}
    source.value = {"v": 2}  # the row is updated ...
    assert cache.invalidate(cache_type, 7, 8) == 1  # ... and its cache entry invalidated
    assert cache.get_or_load(cache_type, 7, source.load) == {"v": 2}
    cache.set(cache_type, 9, {"v": 9})
    assert cache.get_or_load(cache_type, 9, source.load) == {"v": 9}
    assert cache.invalidate_type(cache_type) == 2
    assert client.exists(CACHE.key(type=cache_type, id=7), CACHE.key(type=cache_type, id=9)) == 0


def test_a_load_in_flight_does_not_write_back_after_an_invalidation(client, cache_type):
    cache = Cache(client, ttls={cache_type: 60})
    source = Source("stale", delay=0.5)
    first = {}
    loading = threading.Thread(target=lambda: first.setdefault("value", cache.get_or_load(cache_type, 1, source.load)))
    loading.start()
    time.sleep(0.2)  # the loader has read the old row and is still working
    source.value, source.delay = "fresh", 0
    cache.invalidate(cache_type, 1)
    loading.join()
    assert first["value"] == "stale"  # its caller gets what it read ...
    assert not client.exists(CACHE.key(type=cache_type, id=1))  # ... but it is not cached
    assert cache.get_or_load(cache_type, 1, source.load) == "fresh"
    cache.invalidate(cache_type, 1)


def test_stampede_many_threads_one_loader(redis_url, cache_type):
    # a pool as large as the crowd: redis-py's pool refuses, rather than queues, one caller too many
    cache = Cache(create_client(redis_url, max_connections=32), ttls={cache_type: 60})
    source = Source({"expensive": True}, delay=0.3)
    barrier = threading.Barrier(24)
    results = []

    def read():
        barrier.wait()
        results.append(cache.get_or_load(cache_type, "hot", source.load))

    threads = [threading.Thread(target=read) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert source.calls == 1
    assert results == [{"expensive": True}] * 24
    cache.invalidate(cache_type, "hot")


def test_a_failing_loader_releases_the_key_for_the_next_caller(client, cache_type):
    cache = Cache(client, ttls={cache_type: 60})

    def broken():
        raise LookupError("database said no")

    with pytest.raises(LookupError):
        cache.get_or_load(cache_type, 1, broken)
    assert not client.exists(CACHE_LOCK.key(type=cache_type, id=1))
    assert cache.get_or_load(cache_type, 1, lambda: "ok") == "ok"
    cache.invalidate(cache_type, 1)


def test_waiters_take_over_when_the_loader_fails(client, cache_type):
    cache = Cache(client, ttls={cache_type: 60})
    calls = []

    def flaky():
        calls.append(1)
        time.sleep(0.2)
        if len(calls) == 1:
            raise LookupError("first load fails")
        return "second"

    results, errors = [], []

    def read():
        try:
            results.append(cache.get_or_load(cache_type, 1, flaky))
        except LookupError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(errors) == 1 and results == ["second"] * 5
    assert len(calls) == 2  # the failed load, then exactly one more
    cache.invalidate(cache_type, 1)


def test_reads_fall_through_to_the_loader_when_redis_is_down(dead_url):
    cache = Cache(create_client(dead_url, retries=0, socket_timeout=1))
    source = Source({"from": "database"})
    assert cache.get_or_load("workflow", 1, source.load) == {"from": "database"}
    assert cache.get_or_load("workflow", 1, source.load) == {"from": "database"}
    assert source.calls == 2
    assert cache.get("workflow", 1, default="fallback") == "fallback"
    with pytest.raises(RedisUnavailable) as caught:
        cache.invalidate("workflow", 1)
    assert "DeadPortSecret42" not in str(caught.value)


def test_an_outage_is_not_paid_on_every_read(dead_url):
    # the default client retries with backoff: without the cooldown every read would wait for it
    cache = Cache(create_client(dead_url, socket_timeout=1), unavailable_cooldown=1.0)
    source = Source("from the database")
    cache.get_or_load("workflow", 1, source.load)  # finds Redis down
    start = time.monotonic()
    for _ in range(50):
        assert cache.get_or_load("workflow", 1, source.load) == "from the database"
    assert time.monotonic() - start < 0.2 and source.calls == 51
    assert cache.get("workflow", 1, default="d") == "d"
