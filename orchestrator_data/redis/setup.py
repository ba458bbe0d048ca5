"""Setting up Redis for the keyspace and checking it against the registry.

- `setup_redis(client)`: what the `redis_keyspace` asset and `orchestrator-data init` run — check the
  server is Redis >= 7 (Valkey reports redis_version 7.2.x and passes), load every Lua script, create
  the consumer groups of the declared queues (idempotent), then `inspect_keyspace`.
- `inspect_keyspace(client)`: read-only. Checks the configuration against what the registry needs
  (maxmemory-policy noeviction for sessions, queues and state; a warning when the same instance also
  serves the cache; maxmemory, persistence), and SCANs the keyspace once (SCAN with COUNT, never
  KEYS) counting keys per pattern and those that break the registry's TTL or type rule.
- `redis_status(client)`: the cheap summary for `orchestrator-data status` — memory, hit rate and
  queue depths, no SCAN; it never raises.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import redis

from orchestrator_data.health import major_version
from orchestrator_data.redis import cache, execution_state, queues, ratelimit, sessions
from orchestrator_data.redis._codec import text
from orchestrator_data.redis.client import server_version
from orchestrator_data.redis.errors import KeyspaceError, describe, translated
from orchestrator_data.redis.keyspace import (
    PATTERNS,
    QUEUE,
    QUEUE_TYPES,
    Eviction,
    KeyPattern,
    TTLPolicy,
    classify,
)

log = logging.getLogger("orchestrator_data.redis.setup")

MINIMUM_MAJOR = 7
SCRIPTS: dict[str, str] = {**sessions.SCRIPTS, **cache.SCRIPTS, **ratelimit.SCRIPTS, **execution_state.SCRIPTS,
                           **queues.SCRIPTS}
MEMORY_WARN_FRACTION = 0.8
SAMPLES_PER_PATTERN = 5        # violating keys shown per pattern (masked when sensitive)
MEMORY_SAMPLES_PER_PATTERN = 20  # keys whose MEMORY USAGE estimates a pattern's bytes
MAX_EXTRA_QUEUES = 100  # undeclared queue streams reported besides the declared ones


@dataclass
class PatternReport:
    name: str
    template: str
    type: str
    ttl: str
    eviction: str
    keys: int = 0
    without_ttl: int = 0       # the registry requires a TTL and the key has none: it never goes away
    unexpected_ttl: int = 0    # the registry says "must not expire" and the key will
    wrong_type: int = 0
    samples: list[str] = field(default_factory=list)  # keys breaking a rule, as they may be shown
    memory_bytes_estimate: int | None = None

    @property
    def ttl_violations(self) -> int:
        return self.without_ttl + self.unexpected_ttl

    @property
    def violations(self) -> int:
        return self.ttl_violations + self.wrong_type


@dataclass
class KeyspaceReport:
    server: str
    version: str | None
    maxmemory_policy: str | None
    used_memory_bytes: int | None
    used_memory_peak_bytes: int | None
    maxmemory_bytes: int | None
    patterns: dict[str, PatternReport]
    unregistered_keys: int
    scanned_keys: int
    scan_complete: bool
    cache_stats: dict[str, cache.CacheStats]
    server_hits: int
    server_misses: int
    queues: dict[str, queues.QueueDepth]
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the keyspace is not safe on this server

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def cache_hit_rate(self) -> float | None:
        return cache.total(self.cache_stats).hit_rate

    @property
    def server_hit_rate(self) -> float | None:
        reads = self.server_hits + self.server_misses
        return self.server_hits / reads if reads else None

    @property
    def ttl_violations(self) -> dict[str, int]:
        """Keys per pattern whose TTL breaks the registry's rule (missing, or present where forbidden)."""
        return {name: p.ttl_violations for name, p in self.patterns.items() if p.ttl_violations}

    @property
    def type_violations(self) -> dict[str, int]:
        return {name: p.wrong_type for name, p in self.patterns.items() if p.wrong_type}


@dataclass
class SetupReport:
    keyspace: KeyspaceReport
    scripts: dict[str, str] = field(default_factory=dict)  # name -> SHA1 loaded on the server
    groups_created: list[str] = field(default_factory=list)
    groups_existing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.keyspace.ok




def _rdb_saves(client: redis.Redis) -> bool | None:
    """Whether RDB snapshots are configured; None when CONFIG is not allowed (managed services)."""
    try:
        value = client.config_get("save").get("save")
    except redis.ResponseError:
        return None
    return bool(text(value).strip()) if value is not None else None


def check_configuration(info: dict, rdb_saves: bool | None, serves_cache: bool = True) -> tuple[list[str], list[str]]:
    """(warnings, problems) of a server's INFO against what the registry needs."""
    warnings: list[str] = []
    problems: list[str] = []
    version = info.get("redis_version")
    major = major_version(version)
    if major is None or major < MINIMUM_MAJOR:
        problems.append(f"server is {server_version(info)}; the keyspace needs Redis >= {MINIMUM_MAJOR} "
                        "(XAUTOCLAIM reporting deleted entries, scripts replicated by their effects)")
    if info.get("redis_mode") == "cluster":
        problems.append("server runs in cluster mode; the keyspace's multi-key scripts need one Redis "
                        "(standalone or primary/replica)")
    policy = info.get("maxmemory_policy")
    stateful = [p.template for p in PATTERNS if p.eviction is Eviction.NEVER]
    if policy != "noeviction":
        problems.append(f"maxmemory-policy is {policy}: Redis may evict {', '.join(stateful)} — state that "
                        "is not a cache. Set maxmemory-policy noeviction (and give the cache its own "
                        "instance with allkeys-lru if it must evict)")
    maxmemory = int(info.get("maxmemory") or 0)
    used = int(info.get("used_memory") or 0)
    if serves_cache:
        warnings.append("this instance serves both the cache and sessions/queues/execution state: it must run "
                        "noeviction, so cache keys are never evicted and expire only by TTL — size maxmemory "
                        "for the cache's working set plus the state, or move the cache to an allkeys-lru "
                        "instance")
    if not maxmemory:
        warnings.append("maxmemory is not set: Redis can grow until the operating system kills it; set "
                        "maxmemory so that noeviction refuses writes instead")
    elif used > MEMORY_WARN_FRACTION * maxmemory:
        warnings.append(f"used memory is {used / maxmemory:.0%} of maxmemory ({used} of {maxmemory} bytes): "
                        "under noeviction, writes (new sessions, enqueues) fail when it is full")
    if str(info.get("aof_enabled", "0")) in ("0", "False") and rdb_saves is False:
        warnings.append("no persistence (appendonly no, no save points): a restart loses every session, "
                        "queued message and execution state")
    return warnings, problems


@dataclass
class ScanResult:
    patterns: dict[str, PatternReport]
    unregistered: int
    scanned: int
    complete: bool
    queue_types: list[str]  # the queue streams found


def scan_keyspace(client: redis.Redis, batch: int = 1000, limit: int | None = None,
                  memory_samples: int = MEMORY_SAMPLES_PER_PATTERN) -> ScanResult:
    """One SCAN over the database (COUNT `batch`, stopping after `limit` keys). Per batch, one
    pipelined round trip reads TYPE and PTTL of the registered keys."""
    reports = {p.name: PatternReport(p.name, p.template, p.type.value, p.ttl.value, p.eviction.value)
               for p in PATTERNS}
    sampled: dict[str, list[str]] = {p.name: [] for p in PATTERNS}
    queue_types: list[str] = []
    unregistered = scanned = 0
    cursor = 0
    complete = True
    while True:
        cursor, keys = client.scan(cursor=cursor, count=batch)
        registered: list[tuple[str, KeyPattern]] = []
        for raw in keys:
            key = text(raw)
            found = classify(key)
            if found is None:
                unregistered += 1
            else:
                registered.append((key, found))
        scanned += len(keys)
        if registered:
            pipe = client.pipeline(transaction=False)
            for key, _ in registered:
                pipe.type(key)
                pipe.pttl(key)
            answers = pipe.execute()
            for i, (key, found) in enumerate(registered):
                kind, pttl = text(answers[2 * i]), answers[2 * i + 1]
                if kind == "none":
                    continue  # expired between SCAN and TYPE
                report = reports[found.name]
                report.keys += 1
                broken = False
                if kind != found.type.value:
                    report.wrong_type += 1
                    broken = True
                if found.ttl is TTLPolicy.REQUIRED and pttl == -1:
                    report.without_ttl += 1
                    broken = True
                elif found.ttl is TTLPolicy.NONE and pttl >= 0:
                    report.unexpected_ttl += 1
                    broken = True
                if broken and len(report.samples) < SAMPLES_PER_PATTERN:
                    report.samples.append(found.shown(key))
                if len(sampled[found.name]) < memory_samples:
                    sampled[found.name].append(key)
                if found is QUEUE and kind == "stream":
                    queue_types.append(key[len(QUEUE.prefix):])
        if cursor == 0:
            break
        if limit is not None and scanned >= limit:
            complete = False
            break
    _estimate_memory(client, reports, sampled)
    return ScanResult(reports, unregistered, scanned, complete, sorted(set(queue_types)))


def _estimate_memory(client: redis.Redis, reports: dict[str, PatternReport], sampled: dict[str, list[str]]) -> None:
    """Average MEMORY USAGE of a few keys times the count: the size of each pattern, roughly."""
    todo = [(name, key) for name, keys in sampled.items() for key in keys]
    if not todo:
        return
    pipe = client.pipeline(transaction=False)
    for _, key in todo:
        pipe.memory_usage(key, samples=0)
    try:
        sizes = pipe.execute(raise_on_error=False)
    except redis.ResponseError:
        return  # MEMORY may be disabled on a managed service
    totals: dict[str, list[int]] = {}
    for (name, _), size in zip(todo, sizes):
        if isinstance(size, int):
            totals.setdefault(name, []).append(size)
    for name, values in totals.items():
        reports[name].memory_bytes_estimate = int(sum(values) / len(values) * reports[name].keys)


def inspect_keyspace(client: redis.Redis, queue_types: tuple[str, ...] = QUEUE_TYPES, serves_cache: bool = True,
                     scan_limit: int | None = 5_000_000) -> KeyspaceReport:
    """The server, its configuration and the keyspace against the registry. Read-only.
    Raises RedisUnavailable when Redis cannot be reached."""
    with translated("inspect the Redis keyspace"):
        info = client.info()
        rdb = _rdb_saves(client)
        warnings, problems = check_configuration(info, rdb, serves_cache)
        scan = scan_keyspace(client, limit=scan_limit)
        stats = cache.read_stats(client)
        # the declared queues, and any other queue stream the scan found
        found = [q for q in scan.queue_types if q not in queue_types][:MAX_EXTRA_QUEUES]
        depths = queues.queue_depths(client, [*queue_types, *found])
    if not scan.complete:
        warnings.append(f"the scan stopped after {scan.scanned} keys: counts are partial")
    if scan.unregistered:
        warnings.append(f"{scan.unregistered} key(s) match no registered pattern (see docs/redis-keyspace.md)")
    for report in scan.patterns.values():
        if report.without_ttl:
            warnings.append(f"{report.without_ttl} {report.template} key(s) have no TTL; the registry requires one")
        if report.unexpected_ttl:
            warnings.append(f"{report.unexpected_ttl} {report.template} key(s) have a TTL; they must not expire")
        if report.wrong_type:
            warnings.append(f"{report.wrong_type} {report.template} key(s) are not a {report.type}")
    for type_, depth in depths.items():
        if depth.dead_letters:
            warnings.append(f"dead_letter:{type_} holds {depth.dead_letters} message(s) delivered too often "
                            "without acknowledgement: inspect, fix the handler, replay")
    return KeyspaceReport(
        server=server_version(info), version=info.get("redis_version"),
        maxmemory_policy=info.get("maxmemory_policy"), used_memory_bytes=info.get("used_memory"),
        used_memory_peak_bytes=info.get("used_memory_peak"), maxmemory_bytes=info.get("maxmemory"),
        patterns=scan.patterns, unregistered_keys=scan.unregistered, scanned_keys=scan.scanned,
        scan_complete=scan.complete,
        cache_stats=stats, server_hits=int(info.get("keyspace_hits") or 0),
        server_misses=int(info.get("keyspace_misses") or 0), queues=depths, warnings=warnings, problems=problems)


def setup_redis(client: redis.Redis, queue_types: tuple[str, ...] = QUEUE_TYPES, serves_cache: bool = True,
                scan_limit: int | None = 5_000_000) -> SetupReport:
    """Make the server ready for the keyspace and report on it. Idempotent. On a server older than
    Redis 7 nothing is changed and the report carries the problem. Raises RedisUnavailable when Redis
    cannot be reached, KeyspaceError when a script does not load."""
    with translated("check the Redis server"):
        info = client.info("server")
    major = major_version(info.get("redis_version"))
    scripts: dict[str, str] = {}
    created: list[str] = []
    existing: list[str] = []
    if major is not None and major >= MINIMUM_MAJOR:
        with translated("load the keyspace scripts"):
            for name, source in SCRIPTS.items():
                try:
                    scripts[name] = text(client.script_load(source))
                except redis.ResponseError as exc:
                    raise KeyspaceError(f"script {name} does not load: {describe(exc)}") from exc
        for type_ in queue_types:
            made = queues.WorkQueue(client, type_).ensure_group()
            (created if made else existing).append(QUEUE.key(type=type_))
    report = SetupReport(inspect_keyspace(client, queue_types, serves_cache, scan_limit), scripts, created, existing)
    log.info("redis keyspace set up on %s: %d scripts, %d consumer groups created, %d problems",
             report.keyspace.server, len(report.scripts), len(report.groups_created), len(report.keyspace.problems))
    return report


@dataclass
class RedisStatus:
    ok: bool
    error: str | None = None
    server: str | None = None
    version: str | None = None
    used_memory_bytes: int | None = None
    maxmemory_bytes: int | None = None
    maxmemory_policy: str | None = None
    keys: int | None = None
    cache_hits: int | None = None
    cache_misses: int | None = None
    cache_hit_rate: float | None = None
    server_hit_rate: float | None = None
    queues: dict[str, dict] = field(default_factory=dict)  # type -> length, pending, backlog, consumers, dead_letters

    def as_dict(self) -> dict:
        return asdict(self)


def redis_status(client: redis.Redis, queue_types: tuple[str, ...] = QUEUE_TYPES) -> RedisStatus:
    """Memory, hit rate and queue depths in three round trips (no SCAN), for `orchestrator-data status`. Never
    raises: an unreachable server gives ok=False and a message free of secrets."""
    try:
        with translated("read Redis status"):
            info = client.info()
            stats = cache.total(cache.read_stats(client))
            depths = queues.queue_depths(client, queue_types)
    except KeyspaceError as exc:
        return RedisStatus(ok=False, error=str(exc))
    hits, misses = int(info.get("keyspace_hits") or 0), int(info.get("keyspace_misses") or 0)
    keys = sum(v.get("keys", 0) for k, v in info.items() if k.startswith("db") and isinstance(v, dict))
    return RedisStatus(
        ok=True, server=server_version(info), version=info.get("redis_version"),
        used_memory_bytes=info.get("used_memory"), maxmemory_bytes=info.get("maxmemory"),
        maxmemory_policy=info.get("maxmemory_policy"), keys=keys,
        cache_hits=stats.hits, cache_misses=stats.misses, cache_hit_rate=stats.hit_rate,
        server_hit_rate=hits / (hits + misses) if hits + misses else None,
        queues={t: {**asdict(d), "backlog": d.backlog} for t, d in depths.items()},
    )


__all__ = ["SCRIPTS", "KeyspaceReport", "PatternReport", "RedisStatus", "SetupReport", "check_configuration",
           "inspect_keyspace", "redis_status", "ScanResult",
           "scan_keyspace", "setup_redis"]
