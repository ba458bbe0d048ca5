"""What the keyspace operations raise. Messages are safe to print: driver text goes through `redact`."""

from __future__ import annotations

import contextlib
import logging
import time

import redis

from orchestrator_data.errors import OperationFailed
from orchestrator_data.redaction import redact

# Errors that mean "Redis cannot serve this now" (down, restarting, loading, a read-only replica,
# out of memory under noeviction) as opposed to a bug in a command or script.
UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
)

# The client's own connection pool had no free connection within its wait: this process is busy,
# Redis is not known to be down. A ConnectionError subclass, so it is also in UNAVAILABLE; the
# breakers and the limiter tell it apart (client.py makes the blocking pool raise it).
POOL_EXHAUSTED = redis.exceptions.MaxConnectionsError


class KeyspaceError(OperationFailed):
    """A Redis keyspace operation failed. The message names the operation and is safe to print."""


class RedisUnavailable(KeyspaceError):
    """Redis could not serve the operation (unreachable, restarting, loading, out of memory) and the
    operation has no fallback. Retry later; nothing was half-applied (every write is one command or
    one script)."""


class RedisBusy(RedisUnavailable):
    """No connection of the client's pool came free in time: this process has more concurrent
    Redis calls than `max_connections`. Not an outage; retry, or size the pool for the threads."""


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {redact(str(exc))}"


@contextlib.contextmanager
def translated(operation: str):
    """Turn redis-py's exceptions into the project's, naming the operation."""
    try:
        yield
    except POOL_EXHAUSTED as exc:
        raise RedisBusy(f"{operation}: no free Redis connection in this process ({describe(exc)})") from exc
    except UNAVAILABLE as exc:
        raise RedisUnavailable(f"{operation}: Redis is unavailable ({describe(exc)})") from exc
    except redis.RedisError as exc:
        raise KeyspaceError(f"{operation} failed ({describe(exc)})") from exc


class ThrottledLog:
    """A warning logged at most once per `interval` seconds, so a Redis outage on a hot path (every
    cache read, every limiter check) does not flood the log."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0):
        self.logger = logger
        self.interval = interval
        self._last = -float("inf")
        self.suppressed = 0

    def warning(self, message: str, *args) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            suffix = f" ({self.suppressed} similar warnings suppressed)" if self.suppressed else ""
            self.logger.warning(message + suffix, *args)
            self._last, self.suppressed = now, 0
        else:
            self.suppressed += 1


class Breaker:
    """After Redis failed as unavailable, skip it for `cooldown` seconds. During an outage every call
    would otherwise pay a connection attempt and the client's retries with backoff — on the hot
    paths (cache reads, limiter checks) that have a fallback and should take it at once. A busy
    pool (POOL_EXHAUSTED) does not trip it: Redis answered the calls that had a connection."""

    def __init__(self, cooldown: float):
        self.cooldown = cooldown
        self._closed_at = 0.0

    @property
    def open(self) -> bool:
        return time.monotonic() < self._closed_at

    def trip(self, exc: BaseException) -> None:
        if isinstance(exc, UNAVAILABLE) and not isinstance(exc, POOL_EXHAUSTED):
            self._closed_at = time.monotonic() + self.cooldown
