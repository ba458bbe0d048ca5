"""Rate-limiter checks and cache hits against the plain round trips they are built on.

Why it matters: a limiter check sits on every request, so it must cost one round trip — one EVALSHA,
not a GET then a SET. Baseline: plain PINGs on the same single connection, measured in the same run,
interleaved with the checks in short rounds (a noisy neighbour slows both alike); the goal is a ratio
>= 0.8. A check also writes (the bucket's new state goes to the AOF and any replica), which a PING
does not, so a second line compares it with the cheapest write, a plain SET with PX, and shows the
script's own run time in Redis. The same for cache hits (a GET plus JSON decoding; the hit counters
are flushed in batches) against plain GETs of the same key.
"""

from __future__ import annotations

import statistics
import time
import uuid

from orchestrator_data.connections import resolve_url
from orchestrator_data.redis.cache import Cache
from orchestrator_data.redis.client import create_client
from orchestrator_data.redis.keyspace import CACHE, CACHE_STATS
from orchestrator_data.redis.ratelimit import RateLimit, RateLimiter
from orchestrator_data.settings import load_settings

ROUNDS = 30  # short rounds, alternating baseline and measured: noise on a busy machine hits both


def _seconds_per_op(operation, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        operation()
    return (time.perf_counter() - start) / count


def _compare(*operations, count: int) -> list[float]:
    """Ops/s of each operation: the median over interleaved rounds of `count // ROUNDS` operations."""
    per_round = max(1, count // ROUNDS)
    seconds: list[list[float]] = [[] for _ in operations]
    for _ in range(ROUNDS):
        for samples, operation in zip(seconds, operations):
            samples.append(_seconds_per_op(operation, per_round))
    return [1 / statistics.median(samples) for samples in seconds]


def _server_usec(client, command: str) -> tuple[float, int]:
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return stats.get("usec", 0), stats.get("calls", 0)


def main(count: int = 6000) -> None:
    url = resolve_url("redis", load_settings())
    client = create_client(url, max_connections=1)  # one connection: both sides pay the same round trip
    run = uuid.uuid4().hex[:8]

    limiter = RateLimiter(client)
    # a limit no benchmark reaches: every check runs the whole script and admits
    policy = RateLimit(limit=1_000_000, period=1)
    identifier = f"bench:{run}"
    limiter.check(identifier, policy)  # loads the script
    client.ping()
    scratch = f"bench:{run}:set"
    usec0, calls0 = _server_usec(client, "evalsha")
    ping, plain_set, check = _compare(client.ping, lambda: client.set(scratch, b"1764080000000000", px=60_000),
                                      lambda: limiter.check(identifier, policy), count=count)
    usec1, calls1 = _server_usec(client, "evalsha")
    limiter.reset(identifier, policy)
    client.delete(scratch)
    # the script's own run time in Redis (INFO commandstats; other clients' EVALSHAs would count too)
    server = (usec1 - usec0) / max(1, calls1 - calls0)
    print(f"redis limiter   PING {ping:9.0f} ops/s   check {check:9.0f} ops/s   ratio {check / ping:5.2f}   "
          f"(goal >= 0.80)")
    # a check writes (the bucket's new state goes to the AOF and replicas); a plain SET is the
    # cheapest write, so this ratio shows what the script itself costs beyond any write
    print(f"                SET  {plain_set:9.0f} ops/s   check {check:9.0f} ops/s   ratio {check / plain_set:5.2f}   "
          f"(script time in Redis {server:.1f} us/check)")

    cache_type = f"bench{run}"
    cache = Cache(client, ttls={cache_type: 300})
    value = {"id": 1, "name": "workflow", "engine": "langchain", "steps": list(range(10))}
    cache.get_or_load(cache_type, 1, lambda: value)
    key = CACHE.key(type=cache_type, id=1)
    client.get(key)
    get, hit = _compare(lambda: client.get(key), lambda: cache.get_or_load(cache_type, 1, lambda: value),
                        count=count)
    cache.invalidate(cache_type, 1)
    client.hdel(CACHE_STATS.key(), f"{cache_type}:hits", f"{cache_type}:misses")
    print(f"redis cache     GET  {get:9.0f} ops/s   hit   {hit:9.0f} ops/s   ratio {hit / get:5.2f}")
    client.close()


if __name__ == "__main__":
    main()
