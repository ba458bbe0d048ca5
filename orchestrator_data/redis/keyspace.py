"""The keyspace registry: every key pattern and channel the product uses, with its Redis type, TTL
and what eviction may do to it.

This is the single source of truth: the stores build their keys through it, the setup check scans
the server against it, and docs/redis-keyspace.md shows its table (`markdown_table`). A key that
matches no pattern is reported as unregistered.

Each pattern starts with a literal prefix that is not a prefix of another pattern's, so a key is
classified by its prefix and a pattern's keys are found with one `SCAN MATCH <prefix>*`.

Cluster note: the multi-key scripts (sessions, cache fill) touch keys of different hash slots; the keyspace is designed for one Redis (standalone, or primary with replicas), as the
product runs it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from functools import cached_property
from string import Formatter


class RedisType(str, enum.Enum):
    STRING = "string"
    HASH = "hash"
    SET = "set"
    STREAM = "stream"


class TTLPolicy(str, enum.Enum):
    REQUIRED = "required"  # every key must expire: a key without a TTL is a leak
    NONE = "none"          # the key must not expire: a TTL would silently drop its data


class Eviction(str, enum.Enum):
    NEVER = "never"        # losing the key loses state: the server must run maxmemory-policy noeviction
    ALLOWED = "allowed"    # the key is rebuilt from the source of truth when missing


_GLOB = re.compile(r"[*?\[\]\s]")


@dataclass(frozen=True)
class KeyPattern:
    name: str
    template: str
    type: RedisType
    ttl: TTLPolicy
    ttl_default: str           # what the TTL is, in words, for the docs and the metadata
    eviction: Eviction
    purpose: str
    operations: str
    sensitive: bool = False    # the key's parts are secrets or personal data: never show them
    no_colon: frozenset[str] = field(default_factory=frozenset)  # parts that end in a ':' boundary

    @cached_property
    def parts(self) -> tuple[str, ...]:
        return tuple(name for _, name, _, _ in Formatter().parse(self.template) if name)

    @cached_property
    def _part_set(self) -> frozenset[str]:
        return frozenset(self.parts)

    @property
    def prefix(self) -> str:
        return self.template.split("{", 1)[0]

    @property
    def glob(self) -> str:
        """The SCAN MATCH pattern for every key of this pattern."""
        return self.prefix + "*" if self.parts else self.template

    def key(self, **parts: object) -> str:
        # on the hot path of every limiter check and cache read: keep it cheap
        if parts.keys() != self._part_set:
            raise ValueError(f"{self.name} keys need {', '.join(self.parts)}; got {', '.join(sorted(parts))}")
        for name, value in parts.items():
            text = value if isinstance(value, str) else str(value)
            if not text or _GLOB.search(text):
                raise ValueError(f"{self.name} key part {name!r} must be non-empty, without whitespace or *?[]")
            if name in self.no_colon and ":" in text:
                raise ValueError(f"{self.name} key part {name!r} must not contain ':'")
        return self.template.format_map(parts)

    def matches(self, key: str) -> bool:
        return key.startswith(self.prefix) if self.parts else key == self.template

    def shown(self, key: str) -> str:
        """A key as it may appear in logs and metadata: a sensitive key's parts are masked."""
        return self.prefix + "***" if self.sensitive else key


@dataclass(frozen=True)
class Channel:
    name: str
    template: str
    purpose: str
    payload: str

    def channel(self, **parts: object) -> str:
        return self.template.format(**{k: str(v) for k, v in parts.items()})

    @property
    def glob(self) -> str:
        return self.template.split("{", 1)[0] + "*" if "{" in self.template else self.template


SESSION = KeyPattern(
    "session", "session:{session_id}", RedisType.HASH, TTLPolicy.REQUIRED,
    "sliding idle TTL (24 h), never past the absolute lifetime (7 d)", Eviction.NEVER,
    "a signed-in user's session: user_id, created/last-seen/expiry times, data (JSON)",
    "create, get, touch (slides the TTL), revoke", sensitive=True)
USER_SESSIONS = KeyPattern(
    "user_sessions", "user_sessions:{user_id}", RedisType.SET, TTLPolicy.REQUIRED,
    "the absolute lifetime of the user's newest session", Eviction.NEVER,
    "index of a user's session ids, so revoking all of a user's sessions is exact",
    "added to on create, removed from on revoke, read by revoke-all")
CACHE = KeyPattern(
    "cache", "cache:{type}:{id}", RedisType.STRING, TTLPolicy.REQUIRED,
    "per type (default 5 min, ±10 % jitter)", Eviction.ALLOWED,
    "a cached row or query result (JSON); the database is the source of truth",
    "get-or-load, set, invalidate (by id or type)", no_colon=frozenset({"type"}))
CACHE_LOCK = KeyPattern(
    "cache_lock", "cache_lock:{type}:{id}", RedisType.STRING, TTLPolicy.REQUIRED,
    "the loader lock time (5 s)", Eviction.ALLOWED,
    "the one loader allowed to fill a missing cache key (stampede protection)",
    "SET NX PX by the loader, deleted when the value is written or the key invalidated",
    no_colon=frozenset({"type"}))
CACHE_STATS = KeyPattern(
    "cache_stats", "cache_stats", RedisType.HASH, TTLPolicy.NONE, "counters, kept", Eviction.ALLOWED,
    "hit and miss counters per cache type (fields <type>:hits, <type>:misses)",
    "HINCRBY in batches (each process at most once a second, riding on a read), read by status and the asset")
RATE_LIMIT = KeyPattern(
    "rate_limit", "rate_limit:{identifier}:{window}", RedisType.STRING, TTLPolicy.REQUIRED,
    "until the bucket is full again (at most the window)", Eviction.NEVER,
    "GCRA theoretical arrival time (µs) of one identifier under one window",
    "check (one script call), reset", sensitive=True,  # identifiers are IPs, emails, API keys
    no_colon=frozenset({"window"}))
EXECUTION_STATUS = KeyPattern(
    "execution_status", "execution:status:{execution_id}", RedisType.HASH, TTLPolicy.REQUIRED,
    "24 h while running (renewed by every update), 1 h once finished", Eviction.NEVER,
    "live state of a workflow execution: status, progress, step, message, seq, timestamps",
    "update (writes and publishes in one script), get")
QUEUE = KeyPattern(
    "queue", "queue:{type}", RedisType.STREAM, TTLPolicy.NONE, "entries are deleted once acknowledged",
    Eviction.NEVER,
    "a work queue: a stream read by the consumer group `workers`",
    "enqueue (XADD), consume (XREADGROUP), ack (XACK+XDEL), reclaim (XAUTOCLAIM), pending",
    no_colon=frozenset({"type"}))
DEAD_LETTER = KeyPattern(
    "dead_letter", "dead_letter:{type}", RedisType.STREAM, TTLPolicy.NONE, "kept until replayed or deleted",
    Eviction.NEVER,
    "messages of queue:{type} delivered too often without acknowledgement, with the reason",
    "written by reclaim or dead_letter, read and replayed by an operator", no_colon=frozenset({"type"}))

PATTERNS: tuple[KeyPattern, ...] = (SESSION, USER_SESSIONS, CACHE, CACHE_LOCK, CACHE_STATS, RATE_LIMIT,
                                     EXECUTION_STATUS, QUEUE, DEAD_LETTER)

EXECUTION_EVENTS = Channel(
    "execution_events", "execution:events:{execution_id}",
    "every update of one execution (PSUBSCRIBE execution:events:* for all)",
    "JSON of the execution's state after the update, with its seq")
ALERTS = Channel("alerts", "alerts", "operational alerts (failed jobs, stale data, limits reached)",
                 "JSON: severity, title, detail, source, at")

CHANNELS: tuple[Channel, ...] = (EXECUTION_EVENTS, ALERTS)

# The queues the product declares; setup creates their consumer groups and status reports their depth.
QUEUE_TYPES: tuple[str, ...] = ("executions", "notifications", "webhooks")
CONSUMER_GROUP = "workers"

# TTL per cache type in seconds; a type not listed gets DEFAULT_CACHE_TTL.
CACHE_TTLS: dict[str, int] = {"workflow": 300, "user": 300, "organization": 900, "marketplace_item": 600}
DEFAULT_CACHE_TTL = 300


def _check_prefixes() -> None:
    prefixes = [p.prefix if p.parts else p.template for p in PATTERNS]
    for a in prefixes:
        for b in prefixes:
            if a != b and b.startswith(a) and a.endswith(":"):
                raise AssertionError(f"key prefix {a!r} is a prefix of {b!r}: keys could not be classified")


_check_prefixes()


def classify(key: str | bytes) -> KeyPattern | None:
    """The pattern a key belongs to, or None for a key the registry does not know."""
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    for pattern in PATTERNS:
        if pattern.matches(key):
            return pattern
    return None


def pattern(name: str) -> KeyPattern:
    for candidate in PATTERNS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def markdown_table() -> str:
    """The registry as the Markdown table in docs/redis-keyspace.md."""
    rows = ["| key | type | TTL | eviction | what it holds | operations |", "|---|---|---|---|---|---|"]
    for p in PATTERNS:
        ttl = p.ttl_default if p.ttl is TTLPolicy.REQUIRED else f"none, must not expire ({p.ttl_default})"
        eviction = "must never be evicted" if p.eviction is Eviction.NEVER else "may be evicted"
        rows.append(f"| `{p.template}` | {p.type.value} | {ttl} | {eviction} | {p.purpose} | {p.operations} |")
    for c in CHANNELS:
        rows.append(f"| `{c.template}` | pub/sub channel | — | — | {c.purpose} | payload: {c.payload} |")
    return "\n".join(rows)
