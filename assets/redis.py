"""The Redis keyspace: set up on the server (scripts, consumer groups), checked against the registry,
and described for a DBA (keys per pattern, memory, hit rate, queues). Thin: the core does the work."""

from __future__ import annotations

import dagster as dg

from assets import keys, records
from assets._metadata import code_version, with_human_sizes
from assets._runbook import runbook_metadata
from orchestrator_data.connections import ServiceNotConfigured
from orchestrator_data.redaction import redact
from orchestrator_data.runbook import described
from orchestrator_data.redis.errors import KeyspaceError
from orchestrator_data.redis.keyspace import PATTERNS, TTLPolicy
from orchestrator_data.redis import setup
from orchestrator_data.redis.setup import KeyspaceReport, SetupReport, inspect_keyspace, setup_redis
from resources import RedisResource

KEYS_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("pattern", "string"),
    dg.TableColumn("type", "string"),
    dg.TableColumn("ttl", "string", description="required: every key must expire; none: no key may expire"),
    dg.TableColumn("eviction", "string", description="never: the server must run noeviction"),
    dg.TableColumn("keys", "int"),
    dg.TableColumn("without_ttl", "int", description="keys that should expire and never will"),
    dg.TableColumn("unexpected_ttl", "int", description="keys that must not expire and will"),
    dg.TableColumn("wrong_type", "int"),
    dg.TableColumn("memory_bytes_estimate", "int", description="mean MEMORY USAGE of up to 20 keys x keys"),
])
QUEUE_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("queue", "string"),
    dg.TableColumn("length", "int", description="entries in the stream: backlog + pending"),
    dg.TableColumn("backlog", "int", description="not yet delivered"),
    dg.TableColumn("pending", "int", description="delivered, not yet acknowledged"),
    dg.TableColumn("consumers", "int"),
    dg.TableColumn("dead_letters", "int"),
])
SCRIPT_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("script", "string"),
    dg.TableColumn("sha1", "string", description="as loaded on the server (SCRIPT LOAD)"),
])
VIOLATION_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("pattern", "string"),
    dg.TableColumn("rule", "string"),
    dg.TableColumn("keys", "int"),
    dg.TableColumn("samples", "string", description="up to 5; session ids masked"),
])


def _bullets(lines: list[str], empty: str) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- {redact(line)}" for line in lines) if lines else empty)


def _keyspace_metadata(report: KeyspaceReport) -> dict:
    metadata: dict = {
        "server": report.server,
        "maxmemory_policy": report.maxmemory_policy or "unknown",
        "memory/used_bytes": dg.MetadataValue.int(int(report.used_memory_bytes or 0)),
        "memory/peak_bytes": dg.MetadataValue.int(int(report.used_memory_peak_bytes or 0)),
        "memory/max_bytes": dg.MetadataValue.int(int(report.maxmemory_bytes or 0)),
        "keys": dg.MetadataValue.table(
            records=[dg.TableRecord({
                "pattern": p.template, "type": p.type, "ttl": p.ttl, "eviction": p.eviction, "keys": p.keys,
                "without_ttl": p.without_ttl, "unexpected_ttl": p.unexpected_ttl, "wrong_type": p.wrong_type,
                "memory_bytes_estimate": p.memory_bytes_estimate or 0,
            }) for p in report.patterns.values()],
            schema=KEYS_COLUMNS,
        ),
        "keys/registered": sum(p.keys for p in report.patterns.values()),
        "keys/unregistered": report.unregistered_keys,
        "keys/scanned": report.scanned_keys,
        "keys/scan_complete": report.scan_complete,
        "ttl_violations": sum(report.ttl_violations.values()),
        "cache/hits": sum(s.hits for s in report.cache_stats.values()),
        "cache/misses": sum(s.misses for s in report.cache_stats.values()),
        "queues": dg.MetadataValue.table(
            records=[dg.TableRecord({"queue": f"queue:{name}", "length": d.length, "backlog": d.backlog,
                                     "pending": d.pending, "consumers": d.consumers,
                                     "dead_letters": d.dead_letters})
                     for name, d in report.queues.items()],
            schema=QUEUE_COLUMNS,
        ),
        "warnings": _bullets(report.warnings, "none"),
    }
    # ratios as percentages, as a DBA reads them
    if report.cache_hit_rate is not None:
        metadata["cache/hit_pct"] = dg.MetadataValue.float(round(100 * report.cache_hit_rate, 2))
    if report.server_hit_rate is not None:
        metadata["server/hit_pct"] = dg.MetadataValue.float(round(100 * report.server_hit_rate, 2))
    for name, depth in report.queues.items():
        # one number per queue, so the asset page plots them over materializations
        metadata[f"queue/{name}/length"] = depth.length
        metadata[f"queue/{name}/pending"] = depth.pending
    if report.problems:
        metadata["problems"] = _bullets(report.problems, "none")
    return with_human_sizes(metadata)


@records.builds(keys.REDIS_KEYSPACE)
def keyspace_setup_metadata(report: SetupReport, live: records.Live | None = None) -> dict:
    """redis_keyspace's metadata (also recorded by `init`, `reset` and reset_job)."""
    return _keyspace_metadata(report.keyspace) | {
        "scripts": dg.MetadataValue.table(
            records=[dg.TableRecord({"script": name, "sha1": sha}) for name, sha in sorted(report.scripts.items())],
            schema=SCRIPT_COLUMNS),
        "consumer_groups/created": _bullets(report.groups_created, "none"),
        "consumer_groups/existing": _bullets(report.groups_existing, "none"),
    }


@dg.asset(
    name=keys.REDIS_KEYSPACE,
    group_name=keys.REDIS_GROUP,
    kinds={"redis"},
    owners=["team:data-platform"],
    code_version=code_version(setup),
    description="The Redis keyspace of sessions, cache, rate limits, execution state, queues and pub/sub "
                "(docs/redis-keyspace.md). Checks the server is Redis >= 7, loads the Lua scripts, creates the "
                "queues' consumer groups, and checks the configuration against the registry (maxmemory-policy "
                "noeviction for the state; a warning when the instance also serves the cache). Records keys per "
                "pattern, memory, hit rate and queue depths. Fails when the server cannot hold the keyspace "
                "safely.",
)
def redis_keyspace(redis: RedisResource) -> dg.MaterializeResult:
    try:
        report = setup_redis(redis.client)
    except (KeyspaceError, ServiceNotConfigured) as exc:
        raise dg.Failure(description=f"redis keyspace: {redact(str(exc))}") from None
    metadata = keyspace_setup_metadata(report)
    if not report.ok:
        problems = redact("; ".join(report.keyspace.problems))
        raise dg.Failure(description=f"Redis cannot hold the keyspace safely: {problems}", metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


_RULES = {TTLPolicy.REQUIRED: "must have a TTL", TTLPolicy.NONE: "must not expire"}
TTL_SECTION = keys.check_section(keys.REDIS_KEYSPACE, keys.TTL)


@dg.asset_check(asset=redis_keyspace, name=keys.TTL, metadata=runbook_metadata(TTL_SECTION),
                description=described("Every key has the TTL the registry requires: sessions, cache entries, rate "
                                      "limits and execution state expire; queues and dead letters do not.",
                                      TTL_SECTION))
def check_redis_keyspace_ttl(redis: RedisResource) -> dg.AssetCheckResult:
    try:
        report = inspect_keyspace(redis.client)
    except (KeyspaceError, ServiceNotConfigured) as exc:
        return dg.AssetCheckResult(passed=False, description=redact(str(exc)),
                                   metadata={"error": redact(str(exc)), **runbook_metadata(TTL_SECTION)})
    rules = {p.name: _RULES[p.ttl] for p in PATTERNS}
    violations = report.ttl_violations
    records = [dg.TableRecord({"pattern": report.patterns[name].template, "rule": rules[name], "keys": count,
                               "samples": ", ".join(report.patterns[name].samples)})
               for name, count in violations.items()]
    total = sum(violations.values())
    return dg.AssetCheckResult(
        passed=not violations,
        description=(f"{total:,} key(s) break the registry's TTL rule ("
                     + ", ".join(f"{report.patterns[name].template} {rules[name]}: {count:,}"
                                 for name, count in violations.items())
                     + "); repair: fix the writer that set them, then expire or delete them"
                     if violations else "every key has its TTL"),
        metadata={
            "violations": dg.MetadataValue.table(records=records, schema=VIOLATION_COLUMNS),
            "violating_keys": total,
            "keys/scanned": report.scanned_keys,
            "keys/scan_complete": report.scan_complete,
            "wrong_type": _bullets([f"{pattern}: {count} key(s)" for pattern, count in report.type_violations.items()],
                                   "none"),
            **runbook_metadata(TTL_SECTION),
        },
    )


REDIS_ASSETS = [redis_keyspace]
REDIS_ASSET_CHECKS = [check_redis_keyspace_ttl]
