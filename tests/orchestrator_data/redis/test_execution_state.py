"""Execution state on the real server: each update is written and published in one script, the key
expires once the execution has finished, and a finished execution is not resurrected."""

from __future__ import annotations

import threading
import time

import pytest

from orchestrator_data.redis.client import create_client
from orchestrator_data.redis.errors import RedisUnavailable
from orchestrator_data.redis.execution_state import ExecutionState, ExecutionStateStore
from orchestrator_data.redis.keyspace import EXECUTION_STATUS
from orchestrator_data.redis.pubsub import subscribe_execution, subscribe_executions, watch_execution

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def test_update_writes_and_publishes_the_same_state(client, uid):
    store = ExecutionStateStore(client)
    with subscribe_execution(client, f"e{uid}") as subscription:
        first = store.update(f"e{uid}", status="running", progress=10, step="fetch")
        second = store.update(f"e{uid}", progress=55.5, message="half way", data={"rows": 120})
        events = [subscription.get(timeout=2), subscription.get(timeout=2)]
    assert (first.applied, first.seq, first.receivers) == (True, 1, 1)
    assert (second.seq, second.receivers) == (2, 1)
    states = [ExecutionState.from_event(e.data) for e in events]
    assert [s.seq for s in states] == [1, 2]
    assert states[0].status == "running" and states[0].progress == 10 and states[0].step == "fetch"
    assert states[1].progress == 55.5 and states[1].message == "half way" and states[1].data == {"rows": 120}
    stored = store.get(f"e{uid}")
    assert stored == states[1]  # subscribers see exactly what the key holds
    assert stored.status == "running" and stored.step == "fetch"  # untouched fields are kept
    assert 24 * 3600 - 5 < store.ttl(f"e{uid}") <= 24 * 3600  # running: the long TTL
    store.delete(f"e{uid}")


def test_finished_executions_expire_and_stay_finished(client, uid):
    store = ExecutionStateStore(client, finished_ttl=1.0)
    store.update(uid, status="running", progress=90)
    done = store.update(uid, status="succeeded", progress=100)
    assert done.applied and store.ttl(uid) <= 1.0
    late = store.update(uid, status="running", progress=95)  # a slow worker's late report
    assert not late.applied and late.seq == done.seq
    state = store.get(uid)
    assert state.status == "succeeded" and state.finished and state.finished_at is not None
    time.sleep(1.2)
    assert store.get(uid) is None
    assert not client.exists(EXECUTION_STATUS.key(execution_id=uid))


def test_bad_updates_are_refused(client, uid):
    store = ExecutionStateStore(client)
    with pytest.raises(ValueError):
        store.update(uid, status="exploded")
    with pytest.raises(ValueError):
        store.update(uid, progress=120)
    assert store.get(uid) is None


def test_watch_execution_sees_the_snapshot_then_every_later_state(client, uid):
    store = ExecutionStateStore(client)
    store.update(uid, status="queued")
    store.update(uid, status="running", progress=5)
    seen = []

    def follow():
        for state in watch_execution(client, uid, timeout=5):
            seen.append((state.seq, state.status, state.progress))

    watcher = threading.Thread(target=follow)
    watcher.start()
    time.sleep(0.3)
    for progress in (40, 80):
        store.update(uid, progress=progress)
    store.update(uid, status="failed", message="step 3 timed out")
    watcher.join(10)
    assert not watcher.is_alive()
    assert seen == [(2, "running", 5.0), (3, "running", 40.0), (4, "running", 80.0), (5, "failed", 80.0)]
    store.delete(uid)


def test_all_executions_on_one_pattern_subscription(client, uid):
    store = ExecutionStateStore(client)
    with subscribe_executions(client) as subscription:
        store.update(f"a{uid}", status="running")
        store.update(f"b{uid}", status="running")
        got = set()
        while len(got) < 2:
            event = subscription.get(timeout=2)
            assert event is not None
            if event.data.get("execution_id", "").endswith(uid):
                got.add(event.channel)
                assert event.pattern == "execution:events:*"
    assert got == {f"execution:events:a{uid}", f"execution:events:b{uid}"}
    store.delete(f"a{uid}")
    store.delete(f"b{uid}")


def test_updates_raise_a_clear_error_when_redis_is_down(dead_url):
    store = ExecutionStateStore(create_client(dead_url, retries=0, socket_timeout=1))
    with pytest.raises(RedisUnavailable) as caught:
        store.update("e1", status="running")
    assert str(caught.value).startswith("execution state update: Redis is unavailable")
    assert "DeadPortSecret42" not in str(caught.value)
