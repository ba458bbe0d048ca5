"""Functions run in child processes by the concurrency tests (spawned: importable by name)."""

from __future__ import annotations

import os
import time

from orchestrator_data.redis.client import create_client
from orchestrator_data.redis.queues import WorkQueue
from orchestrator_data.redis.ratelimit import RateLimit, RateLimiter


def hammer_limiter(url: str, identifier: str, limit: int, period: float, checks: int, start_at: float, results) -> None:
    client = create_client(url, max_connections=2)
    limiter = RateLimiter(client, fail_mode="closed")
    policy = RateLimit(limit=limit, period=period)
    client.ping()  # connect before the start line, so the checks really overlap
    time.sleep(max(0.0, start_at - time.time()))
    answers = [limiter.check(identifier, policy) for _ in range(checks)]
    results.put([(a.allowed, a.remaining, a.degraded) for a in answers])
    client.close()


def produce(url: str, queue_type: str, producer: int, count: int, go) -> None:
    client = create_client(url, max_connections=2)
    queue = WorkQueue(client, queue_type)
    client.ping()
    assert go.wait(60), "the consumers never all got ready"
    for i in range(count):
        queue.enqueue({"producer": producer, "n": i})
    client.close()


def consume_until_idle(url: str, queue_type: str, consumer: str, idle_rounds: int, results, ready, go) -> None:
    client = create_client(url, max_connections=2)
    queue = WorkQueue(client, queue_type)
    client.ping()
    ready.put(consumer)
    assert go.wait(60), "the other processes never all got ready"  # idle rounds count from the start line
    seen = []
    empty = 0
    while empty < idle_rounds:
        batch = queue.consume(consumer, count=20, block=0.2)
        if not batch:
            empty += 1
            continue
        empty = 0
        for message in batch:
            seen.append((message.payload["producer"], message.payload["n"]))
        queue.ack(*(m.id for m in batch))
    results.put((consumer, seen))
    client.close()


def consume_and_hang(url: str, queue_type: str, consumer: str, count: int, ready) -> None:
    """Take messages and never acknowledge them: the parent kills this process mid-work."""
    client = create_client(url, max_connections=2)
    queue = WorkQueue(client, queue_type)
    taken = queue.consume(consumer, count=count, block=2.0)
    ready.put((os.getpid(), [m.id for m in taken]))
    time.sleep(60)
