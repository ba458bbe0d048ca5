"""The three servers the data layer runs on: versions, round-trip latency and pool use."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from assets import keys
from assets._metadata import code_version, with_human_sizes
from assets._runbook import runbook_metadata
from orchestrator_data import health
from orchestrator_data.health import ServiceHealth, version_problem
from orchestrator_data.redaction import redact
from orchestrator_data.runbook import described
from orchestrator_data.units import human_bytes
from resources import ElasticsearchResource, PostgresResource, RedisResource

LATENCY_WARN_MS = 50.0
# health_schedule checks every 15 minutes: a result older than an hour says nobody is watching the
# servers (the schedule is off or its runs fail); 30 minutes is a warning
HEALTH_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=1), warn_window=timedelta(minutes=30))

HEALTH_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("service", "string"),
    dg.TableColumn("healthy", "bool"),
    dg.TableColumn("version", "string"),
    dg.TableColumn("latency_ms", "float", description="median of 5 round trips"),
    dg.TableColumn("problem", "string"),
])
DETAIL_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("service", "string"),
    dg.TableColumn("figure", "string"),
    dg.TableColumn("value", "string", description="sizes in binary units"),
])


def _detail_rows(results: list[ServiceHealth]) -> list[dg.TableRecord]:
    rows = []
    for h in results:
        for key, value in h.detail.items():
            if value is None:
                continue
            shown = human_bytes(value) if key.endswith("_bytes") and isinstance(value, int | float) else str(value)
            rows.append(dg.TableRecord({"service": h.service, "figure": key, "value": redact(shown)}))
    return rows


def _collect(postgres: PostgresResource, redis: RedisResource, elasticsearch: ElasticsearchResource) -> list[ServiceHealth]:
    return [postgres.health(), redis.health(), elasticsearch.health()]


def _metadata(results: list[ServiceHealth]) -> dict:
    metadata: dict = {
        "services": dg.MetadataValue.table(
            records=[dg.TableRecord({
                "service": h.service, "healthy": h.ok, "version": h.version or "",
                "latency_ms": h.latency_ms if h.latency_ms is not None else -1.0,
                "problem": redact(h.error or ""),
            }) for h in results],
            schema=HEALTH_COLUMNS,
        ),
        "healthy": all(h.ok for h in results),
    }
    for h in results:  # the latencies as numbers the UI plots; the versions are in the services table
        if h.latency_ms is not None:
            metadata[f"{h.service}/latency_ms"] = dg.MetadataValue.float(h.latency_ms)
    metadata["details"] = dg.MetadataValue.table(records=_detail_rows(results), schema=DETAIL_COLUMNS)
    pg = next(h for h in results if h.service == "postgres").detail
    if "pool_size" in pg:
        metadata["postgres/pool_checked_out"] = pg.get("pool_checked_out", 0)
        metadata["postgres/pool_size"] = pg["pool_size"]
    redis = next(h for h in results if h.service == "redis").detail
    if redis.get("used_memory_bytes") is not None:
        metadata["redis/used_memory_bytes"] = dg.MetadataValue.int(int(redis["used_memory_bytes"]))
    return with_human_sizes(metadata)


@dg.asset(
    name=keys.SERVICE_HEALTH,
    group_name=keys.OPERATIONS_GROUP,
    kinds={"postgres", "redis", "elasticsearch"},
    owners=["team:data-platform"],
    code_version=code_version(health),
    freshness_policy=HEALTH_FRESHNESS,
    description="Each server of the data layer, reached through the shared resources: version, "
                "round-trip latency (median of 5) and connection-pool use. Fails when one is unreachable "
                "or its version is outside what the product supports (PostgreSQL >= 16, Redis >= 7, "
                "Elasticsearch 8.x/9.x).",
)
def service_health(postgres: PostgresResource, redis: RedisResource,
                   elasticsearch: ElasticsearchResource) -> dg.MaterializeResult:
    results = _collect(postgres, redis, elasticsearch)
    metadata = _metadata(results)
    unhealthy = [h for h in results if not h.ok]
    if unhealthy:
        raise dg.Failure(
            description="unhealthy: " + "; ".join(f"{h.service}: {redact(h.error or 'failed')}" for h in unhealthy),
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)


VERSIONS_SECTION = keys.check_section(keys.SERVICE_HEALTH, keys.VERSIONS)
LATENCY_SECTION = keys.check_section(keys.SERVICE_HEALTH, keys.LATENCY)


@dg.asset_check(asset=service_health, name=keys.VERSIONS, blocking=True, metadata=runbook_metadata(VERSIONS_SECTION),
                description=described("Every server's version is one the product supports.", VERSIONS_SECTION))
def check_service_versions(postgres: PostgresResource, redis: RedisResource,
                           elasticsearch: ElasticsearchResource) -> dg.AssetCheckResult:
    results = _collect(postgres, redis, elasticsearch)
    problems = {h.service: (version_problem(h.service, h.compatibility_version) if h.version
                            else redact(h.error or "unreachable")) for h in results}
    failing = {k: v for k, v in problems.items() if v}
    if failing:
        description = ("; ".join(f"{service}: {why}" for service, why in failing.items())
                       + "; repair: bring the server up on a supported version, or point its URL at one")
    else:
        description = ", ".join(f"{h.service} {h.version}" for h in results) + ": supported"
    return dg.AssetCheckResult(
        passed=not failing,
        description=description,
        metadata={f"{h.service}/version": h.version or "unknown" for h in results}
        | ({"problems": dg.MetadataValue.md("\n".join(f"- {k}: {v}" for k, v in failing.items()))}
           if failing else {}) | runbook_metadata(VERSIONS_SECTION),
    )


@dg.asset_check(asset=service_health, name=keys.LATENCY, metadata=runbook_metadata(LATENCY_SECTION),
                description=described(f"Median round trip to every server is under {LATENCY_WARN_MS:.0f} ms "
                                      f"(warning only).", LATENCY_SECTION))
def check_service_latency(postgres: PostgresResource, redis: RedisResource,
                          elasticsearch: ElasticsearchResource) -> dg.AssetCheckResult:
    results = _collect(postgres, redis, elasticsearch)
    slow = {h.service: h.latency_ms for h in results if h.latency_ms is None or h.latency_ms > LATENCY_WARN_MS}
    shown = ", ".join(f"{service} {'unreachable' if ms is None else f'{ms:.1f} ms'}" for service, ms in slow.items())
    return dg.AssetCheckResult(
        passed=not slow,
        severity=dg.AssetCheckSeverity.WARN,
        description=(f"{shown} (limit {LATENCY_WARN_MS:.0f} ms); repair: check the network path to the server "
                     f"and its load" if slow else f"every server under {LATENCY_WARN_MS:.0f} ms"),
        metadata={f"{h.service}/latency_ms": dg.MetadataValue.float(h.latency_ms if h.latency_ms is not None else -1.0)
                  for h in results} | {"threshold_ms": LATENCY_WARN_MS} | runbook_metadata(LATENCY_SECTION),
    )
