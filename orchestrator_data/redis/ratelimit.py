"""Rate limits `rate_limit:{identifier}:{window}`: GCRA (the generic cell rate algorithm) in one Lua
script, so a check is one round trip (EVALSHA) and exact under any concurrency.

GCRA keeps one number per key, the theoretical arrival time (TAT) in server microseconds. With
`limit` requests per `period`, each admitted request moves the TAT `period/limit` further; a request
is admitted when the TAT, after moving, is at most `burst * period/limit` ahead of now. So: up to
`burst` requests at once (default: `limit`), then one every `period/limit` — never more than `limit`
in a burst, and `limit` per `period` on average. The clock is Redis's (TIME), so clients with skewed
clocks agree, and Redis runs one script at a time, so concurrent checks cannot both take the last
slot. The key expires when the bucket is full again.

When Redis is unavailable the limiter answers by its `fail_mode`: OPEN admits (availability first,
e.g. reads), CLOSED refuses (protection first, e.g. sign-in attempts, paid API calls); the result
says `degraded=True` and a throttled warning is logged. For `unavailable_cooldown` seconds after a
failure, checks answer by the fail mode without trying Redis (no connection attempt per request).

A busy client is not an outage: when every connection of the client's pool stays in use for the
pool's whole wait, the check is refused whatever the fail mode (`busy=True`, `degraded=True`), and
the breaker is not tripped. Admitting it would let exactly the overload the limiter exists for
through uncounted; refusing it until Redis "comes back" would refuse everyone for the cooldown.
"""

from __future__ import annotations

import enum
import logging
import math
import re
from dataclasses import dataclass
from functools import cached_property

import redis

from orchestrator_data.redis.errors import (
    POOL_EXHAUSTED,
    UNAVAILABLE,
    Breaker,
    KeyspaceError,
    ThrottledLog,
    describe,
    translated,
)
from orchestrator_data.redis.keyspace import RATE_LIMIT

log = logging.getLogger("orchestrator_data.redis.ratelimit")

# KEYS: limit key. ARGV[1]: "<emission interval µs> <burst offset µs = interval * burst> <cost>".
# Returns "<allowed> <remaining> <retry_after µs> <reset_after µs>". One argument and one string
# each way: packing and parsing in the client is most of a check's cost after the round trip itself.
# Integers only: exact in Lua's doubles.
GCRA_LUA = """
local a, b, c = string.match(ARGV[1], '^(%d+) (%d+) (%d+)$')
local interval, burst_offset, cost = tonumber(a), tonumber(b), tonumber(c)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local diff = now - (new_tat - burst_offset)
if diff < 0 then
  return string.format('0 %.0f %.0f %.0f', math.floor((now + burst_offset - tat) / interval), -diff, tat - now)
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return string.format('1 %.0f 0 %.0f', math.floor(diff / interval), new_tat - now)
"""

SCRIPTS = {"ratelimit.gcra": GCRA_LUA}
_PREFIX = RATE_LIMIT.prefix
_BAD_IDENTIFIER = re.compile(r"[*?\[\]\s]")


class FailMode(str, enum.Enum):
    OPEN = "open"      # Redis down: admit
    CLOSED = "closed"  # Redis down: refuse


@dataclass(frozen=True)
class RateLimit:
    """`limit` requests per `period` seconds, at most `burst` at once (default `limit`). The window
    label in the key is the period (`60s`): one identifier has one policy per period."""

    limit: int
    period: float
    burst: int | None = None

    def __post_init__(self):
        if self.limit < 1 or self.period <= 0 or (self.burst is not None and self.burst < 1):
            raise ValueError("a rate limit needs limit >= 1, period > 0 and burst >= 1")
        if self.period * 1_000_000 / self.limit < 1:
            raise ValueError("a rate limit finer than one request per microsecond cannot be enforced")

    @property
    def window(self) -> str:
        return f"{self.period:g}s"

    @property
    def interval_us(self) -> int:
        # rounded up: the limiter may admit a hair less than the limit, never more
        return math.ceil(self.period * 1_000_000 / self.limit)

    @property
    def capacity(self) -> int:
        return self.burst or self.limit

    @cached_property
    def _args_prefix(self) -> str:
        return f"{self.interval_us} {self.interval_us * self.capacity} "

    @cached_property
    def _key_suffix(self) -> str:
        return f":{self.window}"

    def script_arg(self, cost: int) -> str:
        return self._args_prefix + str(cost)


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    remaining: int          # further requests of cost 1 that would be admitted right now
    retry_after: float      # seconds until this request would be admitted (0 when it was)
    reset_after: float      # seconds until the bucket is full again
    limit: int
    degraded: bool = False  # not a count: Redis was unavailable (the fail mode's answer) or the pool busy
    busy: bool = False      # refused because no pooled connection came free in time (not an outage)

    def headers(self) -> dict[str, str]:
        """The conventional HTTP headers for this answer."""
        headers = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                   "RateLimit-Reset": str(math.ceil(self.reset_after))}
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class RateLimiter:
    """`check(identifier, policy)` admits or refuses one request. `fail_mode` decides when Redis is
    unavailable; `closed_retry_after` is the retry hint given then and when the pool is busy; for
    `unavailable_cooldown` seconds after Redis was found unavailable, checks answer by the fail mode
    without trying it. Give it a client with few retries and short timeouts: a check is on the
    request path."""

    def __init__(self, client: redis.Redis, fail_mode: FailMode | str = FailMode.OPEN,
                 closed_retry_after: float = 1.0, unavailable_cooldown: float = 2.0):
        self.client = client
        self.fail_mode = FailMode(fail_mode)
        self.closed_retry_after = closed_retry_after
        self._gcra = client.register_script(GCRA_LUA)
        self._warn = ThrottledLog(log)
        self._breaker = Breaker(unavailable_cooldown)
        self._busy_log = ThrottledLog(log)

    @property
    def cooling_down(self) -> bool:
        """True while checks answer by the fail mode without trying Redis (after an outage)."""
        return self._breaker.open

    def check(self, identifier: str | int, policy: RateLimit, cost: int = 1) -> RateLimitResult:
        if not 1 <= cost <= policy.capacity:
            raise ValueError(f"cost must be between 1 and the burst ({policy.capacity})")
        identifier = identifier if isinstance(identifier, str) else str(identifier)
        if not identifier or _BAD_IDENTIFIER.search(identifier):
            raise ValueError("a rate limit identifier must be non-empty, without whitespace or *?[]")
        key = _PREFIX + identifier + policy._key_suffix  # RATE_LIMIT.key(), without its generic checks
        if self._breaker.open:
            return self._degraded(policy, None)
        try:
            try:
                # EVALSHA straight from the client: redis-py's Script wrapper costs a measurable share
                # of a check (bench/redis_limiter.py); it is still what loads the script on NOSCRIPT
                reply = self.client.evalsha(self._gcra.sha, 1, key, policy.script_arg(cost))
            except redis.exceptions.NoScriptError:
                reply = self._gcra(keys=[key], args=[policy.script_arg(cost)])  # loads it, then runs it
        except POOL_EXHAUSTED as exc:
            return self._busy(policy, exc)
        except UNAVAILABLE as exc:
            self._breaker.trip(exc)
            return self._degraded(policy, exc)
        except redis.RedisError as exc:  # Redis is up and refused: a bug or a foreign key, not an outage
            raise KeyspaceError(f"rate limit check failed ({describe(exc)})") from exc
        allowed, remaining, retry_us, reset_us = reply.split()
        return RateLimitResult(allowed=allowed == b"1" or allowed == "1", remaining=max(0, int(remaining)),
                               retry_after=int(retry_us) / 1e6, reset_after=int(reset_us) / 1e6, limit=policy.limit)

    def _degraded(self, policy: RateLimit, exc: BaseException | None) -> RateLimitResult:
        self._warn.warning("rate limiter: Redis unavailable, failing %s (%s)", self.fail_mode.value,
                           describe(exc) if exc else "still cooling down after the last failure")
        if self.fail_mode is FailMode.OPEN:
            return RateLimitResult(True, 0, 0.0, 0.0, policy.limit, degraded=True)
        return RateLimitResult(False, 0, self.closed_retry_after, self.closed_retry_after, policy.limit,
                               degraded=True)

    def _busy(self, policy: RateLimit, exc: BaseException) -> RateLimitResult:
        self._busy_log.warning("rate limiter: no free Redis connection in time, refusing uncounted (%s); "
                               "the pool is smaller than the concurrency", describe(exc))
        return RateLimitResult(False, 0, self.closed_retry_after, self.closed_retry_after, policy.limit,
                               degraded=True, busy=True)

    def reset(self, identifier: str | int, policy: RateLimit) -> None:
        """Forget an identifier's usage (e.g. after a successful sign-in). Raises RedisUnavailable."""
        with translated("rate limit reset"):
            self.client.delete(RATE_LIMIT.key(identifier=identifier, window=policy.window))
