"""Work queues on the real server: at-least-once delivery through a consumer group, a consumer that
dies holding messages and another that reclaims them, dead letters after N deliveries, and threads
and processes producing and consuming at once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest

from orchestrator_data.redis.client import create_client
from orchestrator_data.redis.errors import RedisUnavailable
from orchestrator_data.redis.keyspace import DEAD_LETTER, QUEUE
from orchestrator_data.redis.queues import WorkQueue, queue_depths
from tests.orchestrator_data.redis import workers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_enqueue_consume_ack(client, queue_type):
    queue = WorkQueue(client, queue_type)
    assert queue.ensure_group() is True and queue.ensure_group() is False  # idempotent
    ids = [queue.enqueue({"n": n}) for n in range(3)]
    messages = queue.consume("c1", count=10, block=0.1)
    assert [m.id for m in messages] == ids
    assert [m.payload for m in messages] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(m.deliveries == 1 and m.queue == queue_type for m in messages)
    assert queue.consume("c2", count=10, block=0.1) == []  # each message goes to one consumer
    assert [p.consumer for p in queue.pending()] == ["c1"] * 3
    assert queue.depth().pending == 3
    assert queue.ack(ids[0], ids[1]) == 2
    depth = queue.depth()
    assert (depth.length, depth.pending, depth.backlog, depth.group_exists) == (1, 1, 0, True)
    assert queue.ack(ids[0]) == 0  # acknowledged twice: no harm
    queue.ack(ids[2])
    assert queue.depth().length == 0  # acknowledged entries are deleted: the stream holds only work


def test_enqueue_many_and_messages_enqueued_before_the_group(client, queue_type):
    queue = WorkQueue(client, queue_type)
    queue.enqueue_many([{"n": n} for n in range(5)])  # no group yet: the stream exists, the group not
    assert queue.consume("c1", count=10, block=0.1)[-1].payload == {"n": 4}  # created on demand, from 0


def test_a_dead_consumers_messages_are_reclaimed_by_another(redis_url, client, queue_type):
    queue = WorkQueue(client, queue_type, visibility_timeout=0.5)
    queue.ensure_group()
    ids = queue.enqueue_many([{"job": n} for n in range(4)])
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    doomed = ctx.Process(target=workers.consume_and_hang, args=(redis_url, queue_type, "doomed", 10, ready))
    doomed.start()
    pid, taken = ready.get(timeout=20)
    assert taken == ids
    os.kill(pid, signal.SIGKILL)  # dies holding four unacknowledged messages
    doomed.join(10)
    assert {p.consumer for p in queue.pending()} == {"doomed"}
    reclaimed, dead = queue.reclaim("rescuer")
    assert reclaimed == [] and dead == []  # not idle long enough yet: it might still be working
    time.sleep(0.6)
    reclaimed, dead = queue.reclaim("rescuer")
    assert [m.id for m in reclaimed] == ids and dead == []
    assert all(m.deliveries == 2 for m in reclaimed)
    assert {p.consumer for p in queue.pending()} == {"rescuer"}
    assert queue.ack(*ids) == 4
    assert queue.pending() == [] and queue.depth().length == 0


def test_dead_letter_after_n_deliveries(client, queue_type):
    queue = WorkQueue(client, queue_type, max_deliveries=3, visibility_timeout=0)
    poison = queue.enqueue({"bad": True})
    fine = queue.enqueue({"bad": False})
    attempts = []

    def handler(message):
        attempts.append((message.payload["bad"], message.deliveries))
        if message.payload["bad"]:
            raise ValueError("cannot process this")

    results = [queue.work(handler, "w1", block=0.1) for _ in range(4)]
    assert attempts == [(True, 1), (False, 1), (True, 2), (True, 3)]
    assert [r.dead_lettered for r in results] == [0, 0, 0, 1]
    assert results[0].processed == 1 and results[0].failed == 1
    [letter] = queue.dead_letters()
    assert letter.original_id == poison and letter.deliveries == 3 and letter.payload == {"bad": True}
    assert "3 times" in letter.reason
    depth = queue.depth()
    assert (depth.length, depth.pending, depth.dead_letters) == (0, 0, 1)
    assert fine not in {p.id for p in queue.pending()}
    assert queue.replay_dead_letters() == 1  # after the handler is fixed
    assert queue.consume("w1", block=0.1)[0].payload == {"bad": True}
    assert queue.depth().dead_letters == 0


def test_a_poison_message_can_be_dead_lettered_at_once(client, queue_type):
    queue = WorkQueue(client, queue_type)
    queue.enqueue({"x": 1})
    [message] = queue.consume("c", block=0.1)
    queue.dead_letter(message, "payload has no tenant")
    assert queue.pending() == [] and queue.dead_letters()[0].reason == "payload has no tenant"


def test_threads_produce_and_consume_every_message_once(redis_url, queue_type):
    client = create_client(redis_url, max_connections=32)
    queue = WorkQueue(client, queue_type)
    queue.ensure_group()
    seen, lock = [], threading.Lock()
    producing = threading.Event()
    producing.set()

    def produce(p):
        for n in range(100):
            queue.enqueue({"producer": p, "n": n})

    def consume(name):
        while True:
            batch = queue.consume(name, count=25, block=0.1)
            if not batch and not producing.is_set():
                return
            with lock:
                seen.extend((m.payload["producer"], m.payload["n"]) for m in batch)
            queue.ack(*(m.id for m in batch))

    producers = [threading.Thread(target=produce, args=(p,)) for p in range(4)]
    consumers = [threading.Thread(target=consume, args=(f"c{c}",)) for c in range(6)]
    for t in producers + consumers:
        t.start()
    for t in producers:
        t.join(20)
    producing.clear()
    for t in consumers:
        t.join(20)
    assert sorted(seen) == [(p, n) for p in range(4) for n in range(100)]  # all, each exactly once
    assert queue.depth().length == 0 and queue.depth().pending == 0
    client.close()


def test_processes_produce_and_consume_every_message_once(redis_url, client, queue_type):
    WorkQueue(client, queue_type).ensure_group()
    ctx = multiprocessing.get_context("spawn")
    results, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    producers = [ctx.Process(target=workers.produce, args=(redis_url, queue_type, p, 150, go))
                 for p in range(3)]
    consumers = [ctx.Process(target=workers.consume_until_idle,
                             args=(redis_url, queue_type, f"c{c}", 15, results, ready, go)) for c in range(3)]
    for p in producers + consumers:
        p.start()
    # one start line for all, once every consumer is up: a consumer slow to start would find the work
    # done (and Redis 7.0 lists a consumer only once a read has given it something)
    for _ in consumers:
        ready.get(timeout=40)
    go.set()
    outcomes = dict(results.get(timeout=40) for _ in consumers)
    for p in producers + consumers:
        p.join(10)
    assert all(p.exitcode == 0 for p in producers + consumers)
    seen = [item for items in outcomes.values() for item in items]
    assert sorted(seen) == [(p, n) for p in range(3) for n in range(150)]
    assert sum(1 for items in outcomes.values() if items) >= 2  # the work was really shared
    for items in outcomes.values():  # per producer, one consumer sees messages in enqueue order
        for producer in range(3):
            ns = [n for p, n in items if p == producer]
            assert ns == sorted(ns)
    depths = queue_depths(client, [queue_type])[queue_type]
    assert (depths.length, depths.pending, depths.consumers) == (0, 0, 3)


def test_depths_of_queues_that_do_not_exist(client, uid):
    depth = queue_depths(client, [f"never{uid}"])[f"never{uid}"]
    assert (depth.length, depth.pending, depth.dead_letters, depth.group_exists) == (0, 0, 0, False)
    assert not client.exists(QUEUE.key(type=f"never{uid}"), DEAD_LETTER.key(type=f"never{uid}"))


def test_queue_operations_raise_a_clear_error_when_redis_is_down(dead_url):
    queue = WorkQueue(create_client(dead_url, retries=0, socket_timeout=1), "executions")
    for operation in (lambda: queue.enqueue({"x": 1}), lambda: queue.consume("c", block=None),
                      lambda: queue.ack("1-0"), queue.depth, lambda: queue.reclaim("c")):
        with pytest.raises(RedisUnavailable) as caught:
            operation()
        assert "DeadPortSecret42" not in str(caught.value)
