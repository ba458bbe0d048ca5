"""The GCRA limiter on the real server: answers, refill, exactness under threads and processes
hammering one key, one round trip per check, fail-open / fail-closed against a dead port, and a
busy connection pool that is neither an outage nor a way past the limit."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
import redis

from orchestrator_data.redis.client import create_client
from orchestrator_data.redis.errors import KeyspaceError, RedisBusy
from orchestrator_data.redis.keyspace import RATE_LIMIT
from orchestrator_data.redis.ratelimit import FailMode, RateLimit, RateLimiter, RateLimitResult
from tests.orchestrator_data.redis import workers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HOUR = 3600.0  # a long period: no slot refills while a test runs, so counts are exact


def test_allows_the_limit_then_refuses_with_retry_after(client, uid):
    limiter = RateLimiter(client)
    policy = RateLimit(limit=5, period=HOUR)
    answers = [limiter.check(f"user:{uid}", policy) for _ in range(7)]
    assert [a.allowed for a in answers] == [True] * 5 + [False] * 2
    assert [a.remaining for a in answers] == [4, 3, 2, 1, 0, 0, 0]
    assert answers[0].retry_after == 0
    assert answers[5].retry_after == pytest.approx(HOUR / 5, abs=1)  # one slot refills every 12 min
    assert answers[5].headers()["Retry-After"] == str(int(HOUR / 5))
    key = RATE_LIMIT.key(identifier=f"user:{uid}", window="3600s")
    assert client.pttl(key) == pytest.approx(answers[4].reset_after * 1000, abs=50)  # gone once full again
    limiter.reset(f"user:{uid}", policy)
    assert limiter.check(f"user:{uid}", policy).remaining == 4
    limiter.reset(f"user:{uid}", policy)


def test_slots_refill_at_the_rate_and_retry_after_is_right(client, uid):
    limiter = RateLimiter(client)
    policy = RateLimit(limit=4, period=1.0)  # one slot every 250 ms
    assert all(limiter.check(uid, policy).allowed for _ in range(4))
    refused = limiter.check(uid, policy)
    assert not refused.allowed and 0.2 < refused.retry_after <= 0.25
    time.sleep(refused.retry_after + 0.02)
    assert limiter.check(uid, policy).allowed
    assert not limiter.check(uid, policy).allowed
    time.sleep(1.05)  # a full period: the whole burst is back, and the key has expired
    assert limiter.check(uid, policy).remaining == 3


def test_burst_and_cost(client, uid):
    limiter = RateLimiter(client)
    policy = RateLimit(limit=10, period=HOUR, burst=3)
    assert limiter.check(uid, policy, cost=2).remaining == 1
    refused = limiter.check(uid, policy, cost=2)
    assert not refused.allowed and refused.remaining == 1
    assert limiter.check(uid, policy, cost=1).allowed
    with pytest.raises(ValueError):
        limiter.check(uid, policy, cost=4)  # more than the burst can never pass
    limiter.reset(uid, policy)


def test_threads_never_get_more_than_the_limit(redis_url, uid):
    client = create_client(redis_url, max_connections=32)
    limiter = RateLimiter(client)
    policy = RateLimit(limit=50, period=HOUR)
    barrier = threading.Barrier(16)
    answers, lock = [], threading.Lock()

    def hammer():
        barrier.wait()
        mine = [limiter.check(f"t:{uid}", policy) for _ in range(10)]
        with lock:
            answers.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    admitted = [a for a in answers if a.allowed]
    assert len(answers) == 160 and len(admitted) == 50
    # each admitted check saw its own slot: the remaining counts are 49..0, each exactly once
    assert sorted(a.remaining for a in admitted) == list(range(50))
    limiter.reset(f"t:{uid}", policy)
    client.close()


def test_processes_never_get_more_than_the_limit(redis_url, uid):
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    start_at = time.time() + 3.0  # after every child has imported and connected
    procs = [ctx.Process(target=workers.hammer_limiter,
                         args=(redis_url, f"p:{uid}", 40, HOUR, 15, start_at, results)) for _ in range(6)]
    for p in procs:
        p.start()
    answers = [a for _ in procs for a in results.get(timeout=30)]
    for p in procs:
        p.join(10)
    assert all(p.exitcode == 0 for p in procs)
    admitted = [a for a in answers if a[0]]
    assert len(answers) == 90 and len(admitted) == 40
    assert sorted(a[1] for a in admitted) == list(range(40))
    assert not any(a[2] for a in answers)  # none was a degraded answer
    RateLimiter(create_client(redis_url)).reset(f"p:{uid}", RateLimit(40, HOUR))


def test_one_round_trip_per_check(client, uid, monkeypatch):
    limiter = RateLimiter(client)
    policy = RateLimit(limit=100, period=HOUR)
    limiter.check(uid, policy)  # the script is loaded now
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    for _ in range(20):
        limiter.check(uid, policy)
    monkeypatch.undo()
    assert len(sent) == 20 and all(b"EVALSHA" in bytes(c[0] if isinstance(c, list) else c) for c in sent)
    limiter.reset(uid, policy)


@pytest.mark.parametrize("mode,allowed", [(FailMode.OPEN, True), (FailMode.CLOSED, False)])
def test_fail_open_or_closed_when_redis_is_down(dead_url, mode, allowed, caplog):
    limiter = RateLimiter(create_client(dead_url, retries=0, socket_timeout=1), fail_mode=mode,
                          closed_retry_after=2.0)
    answers = [limiter.check("user:1", RateLimit(limit=5, period=60)) for _ in range(3)]
    assert all(a.degraded and a.allowed is allowed for a in answers)
    if not allowed:
        assert answers[0].retry_after == 2.0 and answers[0].headers()["Retry-After"] == "2"
    warnings = [r for r in caplog.records if "rate limiter" in r.getMessage()]
    assert len(warnings) == 1  # throttled: one warning, not one per check
    assert "DeadPortSecret42" not in caplog.text


def test_bad_policies_are_refused():
    for bad in ({"limit": 0, "period": 1}, {"limit": 1, "period": 0}, {"limit": 5, "period": 1, "burst": 0},
                {"limit": 10_000_000, "period": 1}):
        with pytest.raises(ValueError):
            RateLimit(**bad)


def test_an_outage_is_not_paid_on_every_check(dead_url):
    limiter = RateLimiter(create_client(dead_url, socket_timeout=1), "closed", unavailable_cooldown=1.0)
    policy = RateLimit(limit=5, period=60)
    limiter.check("user:1", policy)
    start = time.monotonic()
    answers = [limiter.check("user:1", policy) for _ in range(100)]
    assert time.monotonic() - start < 0.2
    assert all(a.degraded and not a.allowed for a in answers)


def test_a_foreign_value_under_the_key_is_a_clear_error(client, uid):
    policy = RateLimit(limit=5, period=60)
    key = RATE_LIMIT.key(identifier=uid, window=policy.window)
    client.hset(key, "not", "a number")
    client.expire(key, 60)
    with pytest.raises(KeyspaceError) as caught:
        RateLimiter(client).check(uid, policy)
    assert "rate limit check failed" in str(caught.value) and "WRONGTYPE" in str(caught.value)
    client.delete(key)


def hammer(limiter: RateLimiter, identifier: str, policy: RateLimit, threads: int, seconds: float,
           max_checks: int = 3000) -> list[RateLimitResult]:
    """`threads` threads checking one identifier as fast as they can, for `seconds` (and at most
    `max_checks` each): bounded in time and count."""
    barrier = threading.Barrier(threads)
    answers, lock = [], threading.Lock()

    def run():
        barrier.wait()
        deadline, mine = time.monotonic() + seconds, []
        while time.monotonic() < deadline and len(mine) < max_checks:
            mine.append(limiter.check(identifier, policy))
        with lock:
            answers.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(seconds + 20)
    assert not any(t.is_alive() for t in workers)
    return answers


@pytest.mark.parametrize("mode", [FailMode.OPEN, FailMode.CLOSED])
def test_a_busy_pool_neither_breaks_the_limit_nor_trips_the_breaker(redis_url, uid, mode):
    # the hostile tester's setup: 64 threads on 4 connections that wait 50 ms at most
    client = create_client(redis_url, max_connections=4, socket_timeout=0.05)
    limiter = RateLimiter(client, fail_mode=mode)
    policy = RateLimit(limit=50, period=HOUR)
    answers = hammer(limiter, f"busy:{uid}", policy, threads=64, seconds=1.5)
    admitted = [a for a in answers if a.allowed]
    assert len(admitted) == 50, f"{len(admitted)} admitted for a limit of 50 in {len(answers)} checks"
    after = limiter.check(f"busy2:{uid}", policy)
    assert after.allowed and not after.degraded, "the breaker tripped: the limiter thinks Redis is down"
    busy = [a for a in answers if a.busy]
    assert busy, "the pool was never busy: the test did not reproduce the overload"
    assert not any(a.busy and a.allowed for a in busy)
    assert [a for a in answers if a.degraded and not a.busy] == []  # no answer was an outage's
    assert not limiter.cooling_down
    limiter.reset(f"busy:{uid}", policy)
    limiter.reset(f"busy2:{uid}", policy)
    client.close()
    client.connection_pool.disconnect()


def test_a_busy_pool_waits_its_timeout_then_refuses_uncounted(redis_url, uid, caplog):
    client = create_client(redis_url, max_connections=1, socket_timeout=0.3)
    limiter = RateLimiter(client, fail_mode="open")
    policy = RateLimit(limit=5, period=HOUR)
    assert limiter.check(uid, policy).remaining == 4
    held = client.connection_pool.get_connection()  # the pool's only connection, taken by "another thread"
    start = time.monotonic()
    answer = limiter.check(uid, policy)
    waited = time.monotonic() - start
    assert answer.busy and answer.degraded and not answer.allowed  # fail-open does not admit uncounted
    assert 0.25 < waited < 2.0  # it waited for a connection (bounded), then gave up
    assert not limiter.cooling_down
    assert "no free Redis connection" in caplog.text
    with pytest.raises(RedisBusy, match="no free Redis connection"):  # a RedisUnavailable, but says why
        limiter.reset(uid, policy)
    client.connection_pool.release(held)
    answer = limiter.check(uid, policy)
    assert answer.allowed and not answer.degraded and answer.remaining == 3  # the busy check was not counted
    limiter.reset(uid, policy)
    client.connection_pool.disconnect()


@pytest.mark.parametrize("mode,allowed", [(FailMode.OPEN, True), (FailMode.CLOSED, False)])
def test_a_real_outage_still_trips_the_breaker_on_the_same_small_pool(own_redis, mode, allowed):
    client = create_client(own_redis.url(), max_connections=4, socket_timeout=0.05)
    limiter = RateLimiter(client, fail_mode=mode, unavailable_cooldown=30)
    policy = RateLimit(limit=50, period=HOUR)
    assert limiter.check("user:1", policy).remaining == 49
    own_redis.stop()
    answers = hammer(limiter, "user:1", policy, threads=16, seconds=1.5)
    # while the first callers find Redis gone (the client's retries hold their connections), the
    # others may find the pool busy; once one connection is refused, the breaker answers for all
    outage = [a for a in answers if not a.busy]
    assert all(a.degraded for a in answers) and outage and all(a.allowed is allowed for a in outage)
    assert limiter.cooling_down  # a refused connection is an outage: no connection attempt per check
    start = time.monotonic()
    after = limiter.check("user:1", policy)
    assert after.degraded and not after.busy and after.allowed is allowed and time.monotonic() - start < 0.05
    client.connection_pool.disconnect()
