"""redis-py clients on a bounded connection pool, retrying transient errors with backoff."""

from __future__ import annotations

from queue import Empty, LifoQueue

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from orchestrator_data import urls
from orchestrator_data.health import ServiceHealth, failed, median_latency_ms, version_problem
from orchestrator_data.redaction import register_secret

TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class _PoolQueue(LifoQueue):
    """The blocking pool's queue of idle connections. When a caller's wait for one runs out, the pool
    raises a bare ConnectionError("No connection available."), the type a refused or dropped
    connection raises too; this raises redis-py's MaxConnectionsError (a ConnectionError subclass
    meant for pool exhaustion) instead, so a busy pool is not mistaken for Redis being down."""

    def get(self, block=True, timeout=None):
        try:
            return super().get(block, timeout)
        except Empty:
            if not block:
                raise
            raise redis.exceptions.MaxConnectionsError(
                f"all {self.maxsize} connections of the pool stayed in use for {timeout:g} s") from None


def create_client(
    url: str | urls.ServiceUrl,
    max_connections: int = 20,
    socket_timeout: float = 5.0,
    retries: int = 3,
) -> redis.Redis:
    parsed = urls.parse_redis_url(url)
    # Blocking: a caller beyond max_connections waits (up to socket_timeout) for a free connection
    # instead of failing at once; if none comes free it gets MaxConnectionsError (see _PoolQueue).
    pool = redis.BlockingConnectionPool.from_url(
        parsed.render(),  # canonical text: redis-py's urlparse reads it as parse_url did (query options included)
        max_connections=max_connections,
        timeout=socket_timeout,
        queue_class=_PoolQueue,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
        retry=Retry(ExponentialWithJitterBackoff(base=0.1, cap=2.0), retries, supported_errors=TRANSIENT),
        retry_on_error=list(TRANSIENT),
    )
    register_secret(pool.connection_kwargs.get("password"))  # from the userinfo or a ?password=
    return redis.Redis(connection_pool=pool)


def pool_figures(client: redis.Redis) -> dict:
    pool = client.connection_pool
    figures = {"pool_max_connections": pool.max_connections}
    # redis-py keeps these as attributes, not an API; report them when present.
    created = getattr(pool, "_connections", None)
    queue = getattr(getattr(pool, "pool", None), "queue", None)
    if created is not None and queue is not None:  # BlockingConnectionPool: idle ones wait in the queue
        idle = sum(1 for connection in list(queue) if connection is not None)
        figures.update(pool_created=len(created), pool_idle=idle, pool_in_use=len(created) - idle)
    return figures


def server_version(info: dict) -> str:
    """The one way the data layer names a Redis server's version: the server's own, with the Redis
    protocol version it speaks beside it when they differ (Valkey 9.1 speaks Redis 7.2)."""
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']} (redis {info.get('redis_version')})"
    return f"redis {info.get('redis_version')}"


def check_health(client: redis.Redis) -> ServiceHealth:
    try:
        info = client.info()
        latency = median_latency_ms(client.ping)
    except Exception as exc:  # noqa: BLE001
        return failed("redis", exc)
    problem = version_problem("redis", info.get("redis_version"))
    detail = {
        "server": server_version(info),
        "protocol_version": info.get("redis_version"),
        "mode": info.get("redis_mode"),
        "used_memory_bytes": info.get("used_memory"),
        "maxmemory_bytes": info.get("maxmemory"),
        "maxmemory_policy": info.get("maxmemory_policy"),
        "connected_clients": info.get("connected_clients"),
        "keys": sum(v.get("keys", 0) for k, v in info.items() if k.startswith("db") and isinstance(v, dict)),
        "keyspace_hits": info.get("keyspace_hits"),
        "keyspace_misses": info.get("keyspace_misses"),
        **pool_figures(client),
    }
    return ServiceHealth(service="redis", ok=problem is None, version=server_version(info), latency_ms=latency,
                         error=problem, detail=detail)
