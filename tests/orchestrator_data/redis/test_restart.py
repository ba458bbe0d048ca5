"""Redis stopped and restarted in the middle of operations, on a server of the test's own (the
session stack's Redis is never restarted). Every write is one command or one script, so nothing is
half-applied; state persists (AOF); scripts are reloaded on NOSCRIPT; while the server is down each
operation does what it promises: fall through, fail open/closed, or raise RedisUnavailable."""

from __future__ import annotations

import threading
import time

import pytest

from orchestrator_data.redis.cache import Cache
from orchestrator_data.redis.client import create_client
from orchestrator_data.redis.errors import RedisUnavailable
from orchestrator_data.redis.execution_state import ExecutionStateStore
from orchestrator_data.redis.queues import WorkQueue
from orchestrator_data.redis.ratelimit import RateLimit, RateLimiter
from orchestrator_data.redis.sessions import SessionStore
from orchestrator_data.redis.setup import redis_status, setup_redis

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def restart(service) -> None:
    service.stop()
    service.start()


@pytest.fixture
def own_client(own_redis):
    client = create_client(own_redis.url(), retries=1, socket_timeout=2)
    yield client
    client.close()


def test_limiter_keeps_its_count_across_a_restart_and_fails_as_configured_meanwhile(own_redis, own_client):
    policy = RateLimit(limit=5, period=3600)
    open_ = RateLimiter(own_client, "open", unavailable_cooldown=0.2)
    closed = RateLimiter(own_client, "closed", unavailable_cooldown=0.2)
    assert [closed.check("user:1", policy).allowed for _ in range(3)] == [True] * 3
    own_redis.stop()
    down_open, down_closed = open_.check("user:1", policy), closed.check("user:1", policy)
    assert down_open.allowed and down_open.degraded
    assert not down_closed.allowed and down_closed.degraded
    own_redis.start()  # scripts are gone (SCRIPT cache is not persisted); the count is not
    time.sleep(0.25)  # the limiter tries Redis again once its cooldown is over
    answers = [closed.check("user:1", policy) for _ in range(3)]
    assert [(a.allowed, a.remaining, a.degraded) for a in answers] == [(True, 1, False), (True, 0, False),
                                                                       (False, 0, False)]


def test_queue_messages_survive_a_restart_mid_processing(own_redis, own_client):
    queue = WorkQueue(own_client, "executions", visibility_timeout=0)
    queue.ensure_group()
    ids = queue.enqueue_many([{"execution": n} for n in range(3)])
    taken = queue.consume("worker-a", count=3, block=0.1)
    queue.ack(taken[0].id)
    restart(own_redis)  # worker-a is processing the other two when Redis goes away
    assert queue.ack(taken[1].id) == 1  # its ack after the restart still counts
    assert [p.id for p in queue.pending()] == [ids[2]]  # the unacknowledged one was not lost
    reclaimed, _ = queue.reclaim("worker-b")
    assert [m.id for m in reclaimed] == [ids[2]] and reclaimed[0].deliveries == 2
    own_redis.stop()
    with pytest.raises(RedisUnavailable):
        queue.ack(ids[2])  # the caller learns it; the message stays pending for a redelivery
    own_redis.start()
    assert [p.id for p in queue.pending()] == [ids[2]]


def test_a_cache_load_during_which_redis_restarts(own_redis, own_client):
    cache = Cache(own_client, ttls={"workflow": 60}, lock_ttl=1.0, unavailable_cooldown=0.2)
    restarted = threading.Event()

    def loader_that_outlives_redis():
        own_redis.stop()  # Redis goes down while the value is being loaded
        restarted.set()
        return {"v": 1}

    assert cache.get_or_load("workflow", 1, loader_that_outlives_redis) == {"v": 1}  # not a crash
    assert restarted.is_set()
    calls = []
    assert cache.get_or_load("workflow", 1, lambda: calls.append(1) or {"v": 1}) == {"v": 1}  # down: loader
    own_redis.start()
    time.sleep(0.25)
    start = time.monotonic()
    assert cache.get_or_load("workflow", 1, lambda: calls.append(1) or {"v": 1}) == {"v": 1}
    assert time.monotonic() - start < 1.5  # the interrupted load's lock survived, but only for its TTL
    assert cache.get_or_load("workflow", 1, lambda: calls.append(1) or {"v": 1}) == {"v": 1}
    assert len(calls) == 2  # once while down, once to refill; then a hit
    assert cache.stats()["workflow"].hits >= 1


def test_sessions_and_state_raise_while_down_and_work_after(own_redis, own_client):
    sessions, states = SessionStore(own_client), ExecutionStateStore(own_client)
    session = sessions.create("u1")
    states.update("e1", status="running", progress=10)
    own_redis.stop()
    for operation in (lambda: sessions.create("u1"), lambda: sessions.touch(session.id),
                      lambda: states.update("e1", progress=20)):
        with pytest.raises(RedisUnavailable):
            operation()
    status = redis_status(own_client)
    assert not status.ok and "Redis is unavailable" in status.error
    own_redis.start()
    assert sessions.touch(session.id).user_id == "u1"  # persisted, and the script reloaded
    assert states.update("e1", progress=20).seq == 2
    assert sessions.revoke_user("u1") == 1


def test_setup_after_a_restart_reloads_scripts_and_keeps_groups(own_redis, own_client):
    first = setup_redis(own_client)
    assert first.ok, first.keyspace.problems
    assert len(first.groups_created) == 3
    restart(own_redis)
    assert own_client.script_exists(*first.scripts.values()) == [False] * len(first.scripts)
    again = setup_redis(own_client)
    assert again.groups_created == [] and len(again.groups_existing) == 3
    assert own_client.script_exists(*again.scripts.values()) == [True] * len(again.scripts)
