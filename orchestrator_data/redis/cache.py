"""Read-through cache `cache:{type}:{id}` with a TTL per type, one loader per key at a time, and hit
and miss counters kept in Redis (`cache_stats`).

A hit is one GET. Hits and misses are counted in the process and added to `cache_stats` at most
`stats_flush_interval` seconds later, in the same round trip as a read (a pipeline: GET, HINCRBY…):
counting in Redis on every read would turn every cache read into a write — into the AOF and to every
replica — on the hottest path there is. `flush_stats()` pushes them at once.

Stampede protection: on a miss, one caller takes the short lock `cache_lock:{type}:{id}`
(SET NX PX) and runs the loader; the others poll, with backoff, until the value appears or the lock
goes away (then one of them takes it). The value is written only if the writer still holds the lock,
and `invalidate` deletes the lock with the value: a load that started before the source row changed
can therefore never write its stale value after the invalidation.

When Redis is unavailable — or answers a read with any error — reads fall through to the loader (the
cache is an optimisation, the database the source of truth); nothing is raised, and for
`unavailable_cooldown` seconds reads do not even try Redis, so an outage costs no connection attempts
and retries on every read. Writes and
invalidations raise RedisUnavailable: a caller that changed a row must know its invalidation failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator_data.redis._codec import text
from orchestrator_data.redis.errors import Breaker, ThrottledLog, describe, translated
from orchestrator_data.redis.keyspace import CACHE, CACHE_LOCK, CACHE_STATS, CACHE_TTLS, DEFAULT_CACHE_TTL

log = logging.getLogger("orchestrator_data.redis.cache")

# Write the value only while holding the loader lock. KEYS: value, lock. ARGV: token, value, ttl ms.
FILL_LUA = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"""

# Compare-and-delete. KEYS: lock. ARGV: token.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_STATS_KEY = CACHE_STATS.key()

SCRIPTS = {"cache.fill": FILL_LUA, "cache.release": RELEASE_LUA}


@dataclass(frozen=True)
class CacheStats:
    hits: int = 0
    misses: int = 0

    @property
    def reads(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.reads if self.reads else None


def read_stats(client: redis.Redis) -> dict[str, CacheStats]:
    """Hits and misses per cache type, from the counters in Redis."""
    raw = {text(k): int(v) for k, v in client.hgetall(CACHE_STATS.key()).items()}
    types = {field.rsplit(":", 1)[0] for field in raw}
    return {t: CacheStats(raw.get(f"{t}:hits", 0), raw.get(f"{t}:misses", 0)) for t in sorted(types)}


def total(stats: dict[str, CacheStats]) -> CacheStats:
    return CacheStats(sum(s.hits for s in stats.values()), sum(s.misses for s in stats.values()))


class Cache:
    """`get_or_load(type, id, loader)`: the cached value, or the loader's, cached for the type's TTL.

    Values are JSON by default (`dumps`/`loads` to change it); None is a value and is cached too, so
    a missing row does not send every read to the database. `lock_ttl` bounds how long one loader
    may hold a key before another may try — and how long a lock orphaned by a loader that died, or
    by an outage during its load, delays that key's readers; `wait_timeout` (default: `lock_ttl`) how long a caller
    waits for another's load before loading itself, uncached; `unavailable_cooldown` how long reads
    go straight to the loader after Redis was found unavailable. Thread-safe; share one per process.
    """

    def __init__(self, client: redis.Redis, ttls: dict[str, float] | None = None,
                 default_ttl: float = DEFAULT_CACHE_TTL, jitter: float = 0.1, lock_ttl: float = 5.0,
                 wait_timeout: float | None = None, stats_flush_interval: float = 1.0,
                 unavailable_cooldown: float = 2.0,
                 dumps: Callable[[Any], str | bytes] = lambda v: json.dumps(v, separators=(",", ":")),
                 loads: Callable[[bytes], Any] = json.loads):
        self.client = client
        self.ttls = dict(CACHE_TTLS if ttls is None else ttls)
        self.default_ttl = default_ttl
        self.jitter = jitter  # spreads expiry of keys filled together, so they do not all miss at once
        self.lock_ms = int(lock_ttl * 1000)
        self.wait_timeout = lock_ttl if wait_timeout is None else wait_timeout
        self.dumps, self.loads = dumps, loads
        self.stats_flush_interval = stats_flush_interval
        self._counts: dict[str, list[int]] = {}  # type -> [hits, misses] not yet in Redis
        self._counts_lock = threading.Lock()
        self._flushed_at = time.monotonic()
        self._fill = client.register_script(FILL_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._warn = ThrottledLog(log)
        self._breaker = Breaker(unavailable_cooldown)

    def ttl_for(self, type_: str) -> float:
        return self.ttls.get(type_, self.default_ttl)

    def _ttl_ms(self, type_: str, ttl: float | None) -> int:
        seconds = self.ttl_for(type_) if ttl is None else ttl
        if self.jitter:
            seconds *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(1, int(seconds * 1000))

    def get_or_load(self, type_: str, id_: str | int, loader: Callable[[], Any], ttl: float | None = None) -> Any:
        key = CACHE.key(type=type_, id=id_)
        if self._breaker.open:
            return loader()
        try:
            raw = self._get_counted(key, type_)
        except redis.RedisError as exc:
            return self._fallback(loader, exc)
        if raw is not None:
            return self.loads(raw)
        lock = CACHE_LOCK.key(type=type_, id=id_)
        deadline = time.monotonic() + self.wait_timeout
        while True:
            token = uuid.uuid4().hex
            try:
                acquired = self.client.set(lock, token, nx=True, px=self.lock_ms)
            except redis.RedisError as exc:
                return self._fallback(loader, exc)
            if acquired:
                return self._load_and_fill(type_, key, lock, token, loader, ttl)
            try:
                raw, lock_held = self._wait(key, lock, deadline)
            except redis.RedisError as exc:
                return self._fallback(loader, exc)
            if raw is not None:
                return self.loads(raw)
            if lock_held:  # waited long enough: load without caching rather than block the caller
                self._warn.warning("cache %s: another loader held the key past %.1f s; loading uncached",
                                   type_, self.wait_timeout)
                return loader()
            # the loader finished without writing (it failed, or the key was invalidated): take over

    def _get_counted(self, key: str, type_: str):
        if time.monotonic() - self._flushed_at < self.stats_flush_interval:
            raw = self.client.get(key)
        else:
            raw = self._get_and_flush(key)
        with self._counts_lock:
            counts = self._counts.get(type_)
            if counts is None:
                counts = self._counts[type_] = [0, 0]
            counts[0 if raw is not None else 1] += 1
        return raw

    def _take_counts(self) -> dict[str, list[int]]:
        with self._counts_lock:
            taken, self._counts = self._counts, {}
            self._flushed_at = time.monotonic()
        return taken

    def _restore_counts(self, taken: dict[str, list[int]]) -> None:
        with self._counts_lock:
            for type_, (hits, misses) in taken.items():
                counts = self._counts.setdefault(type_, [0, 0])
                counts[0] += hits
                counts[1] += misses

    @staticmethod
    def _queue_counts(pipe, taken: dict[str, list[int]]) -> list[tuple[str, int, int]]:
        """Queue one HINCRBY per non-zero count; returns (type, slot, amount) in the same order."""
        queued = []
        for type_, counts in taken.items():
            for slot, name in ((0, "hits"), (1, "misses")):
                if counts[slot]:
                    pipe.hincrby(_STATS_KEY, f"{type_}:{name}", counts[slot])
                    queued.append((type_, slot, counts[slot]))
        return queued

    def _restore_failed(self, queued: list[tuple[str, int, int]], results: list) -> None:
        failed: dict[str, list[int]] = {}
        for (type_, slot, amount), result in zip(queued, results):
            if isinstance(result, Exception):
                failed.setdefault(type_, [0, 0])[slot] += amount
        if failed:
            self._restore_counts(failed)

    def _get_and_flush(self, key: str):
        taken = self._take_counts()
        pipe = self.client.pipeline(transaction=False)
        pipe.get(key)
        queued = self._queue_counts(pipe, taken)
        try:
            raw, *written = pipe.execute(raise_on_error=False)
        except BaseException:
            self._restore_counts(taken)
            raise
        # a refused counter (noeviction at maxmemory) is kept for the next flush; the read is served
        self._restore_failed(queued, written)
        if isinstance(raw, Exception):
            raise raw
        return raw

    def flush_stats(self) -> None:
        """Add the hits and misses counted in this process to `cache_stats` now."""
        taken = self._take_counts()
        if not taken:
            return
        try:
            with translated("cache stats flush"):
                pipe = self.client.pipeline(transaction=False)
                self._queue_counts(pipe, taken)
                pipe.execute()
        except BaseException:
            self._restore_counts(taken)
            raise

    def _wait(self, key: str, lock: str, deadline: float):
        delay = 0.002
        while True:
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 0.05)
            pipe = self.client.pipeline(transaction=False)
            pipe.get(key)
            pipe.exists(lock)
            raw, lock_held = pipe.execute()
            if raw is not None or not lock_held or time.monotonic() >= deadline:
                return raw, bool(lock_held)

    def _load_and_fill(self, type_: str, key: str, lock: str, token: str, loader, ttl):
        try:
            value = loader()
        except BaseException:
            with contextlib.suppress(redis.RedisError):  # if Redis is down, the lock expires on its own
                self._release(keys=[lock], args=[token])
            raise
        try:
            self._fill(keys=[key, lock], args=[token, self.dumps(value), self._ttl_ms(type_, ttl)])
        except redis.RedisError as exc:
            self._breaker.trip(exc)
            self._warn.warning("cache %s: value not stored, Redis unavailable (%s)", type_, describe(exc))
        return value

    def _fallback(self, loader, exc: BaseException):
        self._breaker.trip(exc)
        self._warn.warning("cache: Redis failed the read, reading through to the loader (%s)", describe(exc))
        return loader()

    def get(self, type_: str, id_: str | int, default: Any = None) -> Any:
        """The cached value or `default` (also when Redis is unavailable); counts a hit or a miss."""
        key = CACHE.key(type=type_, id=id_)
        if self._breaker.open:
            return default
        try:
            raw = self._get_counted(key, type_)
        except redis.RedisError as exc:
            self._breaker.trip(exc)
            self._warn.warning("cache: Redis unavailable (%s)", describe(exc))
            return default
        return default if raw is None else self.loads(raw)

    def set(self, type_: str, id_: str | int, value: Any, ttl: float | None = None) -> None:
        """Write-through after the source row was written. Raises RedisUnavailable when down: the
        caller then invalidates later or lets the TTL expire the old value."""
        with translated("cache set"):
            self.client.set(CACHE.key(type=type_, id=id_), self.dumps(value), px=self._ttl_ms(type_, ttl))

    def invalidate(self, type_: str, *ids: str | int) -> int:
        """Drop cached values after their source rows changed; a load in flight will not write back.
        Returns how many values were cached. Raises RedisUnavailable when down."""
        if not ids:
            return 0
        keys = [CACHE.key(type=type_, id=i) for i in ids]
        locks = [CACHE_LOCK.key(type=type_, id=i) for i in ids]
        with translated("cache invalidate"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(*keys)
            pipe.delete(*locks)
            removed, _ = pipe.execute()
        return int(removed)

    def invalidate_type(self, type_: str, batch: int = 500) -> int:
        """Drop every cached value of a type (SCAN, never KEYS; UNLINK frees memory in the background).
        Returns how many values were cached."""
        CACHE.key(type=type_, id="x")  # validates the type before it goes into a glob
        removed = 0
        with translated("cache invalidate type"):
            for pattern in (CACHE, CACHE_LOCK):
                chunk: list = []
                for key in self.client.scan_iter(match=f"{pattern.prefix}{type_}:*", count=batch):
                    chunk.append(key)
                    if len(chunk) >= batch:
                        removed += self._unlink(pattern, chunk)
                        chunk = []
                if chunk:
                    removed += self._unlink(pattern, chunk)
        return removed

    def _unlink(self, pattern, keys: list) -> int:
        count = self.client.unlink(*keys)
        return count if pattern is CACHE else 0

    def stats(self) -> dict[str, CacheStats]:
        """Every process's counts, this one's included (flushed first)."""
        self.flush_stats()
        with translated("cache stats"):
            return read_stats(self.client)
