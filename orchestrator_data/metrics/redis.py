"""Redis's figures: memory, hit rate, clients, throughput and the depth of every work queue.

Queues are the streams `queue:{type}` (docs/redis-keyspace.md): the declared types, plus any other
queue stream found with one `SCAN MATCH queue:* TYPE stream` (never KEYS), measured together with
`queues.queue_depths` in one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from orchestrator_data.metrics.samples import BYTES, COUNT, PER_SECOND, RATIO, Sample
from orchestrator_data.redis import queues
from orchestrator_data.redis._codec import text
from orchestrator_data.redis.errors import translated
from orchestrator_data.redis.keyspace import QUEUE, QUEUE_TYPES

SERVICE = "redis"
MAX_EXTRA_QUEUES = 100   # undeclared queue streams measured besides the declared ones


@dataclass
class RedisFigures:
    samples: list[Sample] = field(default_factory=list)
    queues: dict[str, queues.QueueDepth] = field(default_factory=dict)


def queue_types(client: redis.Redis, declared: tuple[str, ...] = QUEUE_TYPES) -> list[str]:
    """The declared queues and every other `queue:*` stream on the server (at most MAX_EXTRA_QUEUES)."""
    found = sorted({text(key)[len(QUEUE.prefix):]
                    for key in client.scan_iter(match=QUEUE.glob, count=1000, _type="stream")} - set(declared))
    return [*declared, *found[:MAX_EXTRA_QUEUES]]


def collect(client: redis.Redis, declared: tuple[str, ...] = QUEUE_TYPES) -> RedisFigures:
    """Raises RedisUnavailable / KeyspaceError (messages safe to print) when Redis cannot answer."""
    with translated("collect Redis metrics"):
        info = client.info()
        depths = queues.queue_depths(client, queue_types(client, declared))
    figures = RedisFigures(queues=depths)
    samples = figures.samples
    samples += [Sample(SERVICE, "used_memory", info["used_memory"], BYTES),
                Sample(SERVICE, "connected_clients", info["connected_clients"], COUNT),
                Sample(SERVICE, "ops_per_second", info["instantaneous_ops_per_sec"], PER_SECOND)]
    if info.get("maxmemory"):   # 0: no limit
        samples.append(Sample(SERVICE, "maxmemory", info["maxmemory"], BYTES))
    if info.get("mem_fragmentation_ratio") is not None:
        samples.append(Sample(SERVICE, "mem_fragmentation_ratio", float(info["mem_fragmentation_ratio"]), RATIO))
    hits, misses = int(info.get("keyspace_hits") or 0), int(info.get("keyspace_misses") or 0)
    if hits + misses:
        samples.append(Sample(SERVICE, "hit_rate", hits / (hits + misses), RATIO))
    for type_, depth in depths.items():
        labels = {"queue": type_}
        samples += [Sample(SERVICE, "queue_length", depth.length, COUNT, labels),
                    Sample(SERVICE, "queue_pending", depth.pending, COUNT, labels),
                    Sample(SERVICE, "queue_backlog", depth.backlog, COUNT, labels),
                    Sample(SERVICE, "queue_dead_letters", depth.dead_letters, COUNT, labels)]
    return figures
