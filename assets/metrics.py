"""The `system_metrics` asset: the data layer's own figures from PostgreSQL, Redis and Elasticsearch,
written into the system_metrics index, with the headline numbers as metadata so the UI plots them.
Thin: orchestrator_data.metrics does the work, the same code `orchestrator-data metrics collect` runs."""

# no `from __future__ import annotations`: Dagster reads the parameter annotations to inject resources
from datetime import datetime, timedelta

import dagster as dg

from assets import keys, records
from assets._metadata import code_version, with_human_sizes
from assets._runbook import runbook_metadata
from assets.backups import freshness_check_result
from orchestrator_data import metrics
from orchestrator_data.metrics.freshness import sample_freshness
from orchestrator_data.runbook import described
from orchestrator_data.metrics import MetricsError, MetricsReport, collect_and_write
from orchestrator_data.metrics.wal_archive import probe_of
from orchestrator_data.metrics import elasticsearch as es_metrics, postgres as pg_metrics, redis as redis_metrics
from orchestrator_data.search.errors import SearchError
from resources import ElasticsearchResource, PostgresResource, RedisResource

# Set by system_metrics_schedule to its tick's time: a retried run that keeps its tags samples under
# the same time, so its documents get the same ids and nothing is written twice.
SAMPLED_AT_TAG = "orchestrator-data/sampled_at"
# Headline figures that are whole numbers; the others (percentages, rates, seconds) are floats.
WHOLE = {"pg_connections", "pg_database_bytes", "redis_used_memory_bytes", "redis_clients", "queue_depth_total",
         "pg_standbys", "pg_timeline", "pg_replication_replay_lag_bytes", "pg_slot_retained_bytes",
         "es_documents", "es_store_bytes", "samples_written"}
# How the UI shows the core's ratios and rates: ratios as percentages, rates with their unit in the
# name (the core's headline keys, which `metrics collect --json` prints, stay as they are)
SHOWN_AS = {
    "pg_cache_hit_ratio": ("pg_cache_hit_pct", 100.0),
    "redis_hit_rate": ("redis_hit_pct", 100.0),
    "es_heap_used_ratio": ("es_heap_used_pct", 100.0),
    "pg_commit_rate": ("pg_commits_per_s", 1.0),
    "pg_rollback_rate": ("pg_rollbacks_per_s", 1.0),
    "redis_ops_per_second": ("redis_ops_per_s", 1.0),
    "es_search_rate": ("es_queries_per_s", 1.0),
    "es_indexing_rate": ("es_docs_indexed_per_s", 1.0),
}

# system_metrics_schedule samples every 5 minutes: no sample for 15 minutes means the schedule is off
# or its runs fail (10 minutes: a warning). The policy shows it on the asset page; the check reads the
# newest sample in the index, whoever wrote it (the schedule or `orchestrator-data metrics collect`).
SAMPLES_MAX_AGE = timedelta(minutes=15)
METRICS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=SAMPLES_MAX_AGE, warn_window=timedelta(minutes=10))
FRESHNESS_SECTION = keys.check_section(keys.SYSTEM_METRICS, keys.FRESHNESS)

LARGEST_TABLES = dg.TableSchema(columns=[
    dg.TableColumn("schema", "string"), dg.TableColumn("table", "string"),
    dg.TableColumn("total_bytes", "int"), dg.TableColumn("rows_estimate", "int"),
])
SLOWEST_STATEMENTS = dg.TableSchema(columns=[
    dg.TableColumn("queryid", "string"), dg.TableColumn("query", "string"), dg.TableColumn("calls", "int"),
    dg.TableColumn("mean_ms", "float"), dg.TableColumn("total_ms", "float"),
])
INDICES = dg.TableSchema(columns=[
    dg.TableColumn("index", "string"), dg.TableColumn("documents", "int"), dg.TableColumn("store_bytes", "int"),
])
QUEUES = dg.TableSchema(columns=[
    dg.TableColumn("queue", "string"), dg.TableColumn("length", "int"), dg.TableColumn("pending", "int"),
    dg.TableColumn("dead_letters", "int"),
])


def sampled_at_of(tags: dict) -> datetime | None:
    value = tags.get(SAMPLED_AT_TAG)
    return datetime.fromisoformat(value) if value else None


@records.builds(keys.SYSTEM_METRICS)
def metrics_metadata(report: MetricsReport, live: records.Live | None = None) -> dict:
    """system_metrics' metadata (also recorded by `metrics collect`)."""
    metadata: dict = {}
    for key, value in report.headline().items():
        if key in WHOLE:
            metadata[key] = dg.MetadataValue.int(int(value))
            continue
        name, scale = SHOWN_AS.get(key, (key, 1.0))
        metadata[name] = dg.MetadataValue.float(round(float(value) * scale, 3))
    metadata["sampled_at"] = report.sampled_at.isoformat()
    if report.postgres:
        pg = report.postgres
        metadata["pg_stat_statements"] = "on" if pg.statements_on else f"off: {pg.statements_note}"
        metadata["largest_tables"] = dg.MetadataValue.table(schema=LARGEST_TABLES, records=[
            dg.TableRecord({"schema": t.schema, "table": t.table, "total_bytes": t.total_bytes,
                            "rows_estimate": t.rows_estimate if t.rows_estimate is not None else -1})
            for t in pg.largest_tables])
        if pg.statements_on:
            metadata["slowest_statements"] = dg.MetadataValue.table(schema=SLOWEST_STATEMENTS, records=[
                dg.TableRecord({"queryid": s.queryid, "query": s.query, "calls": s.calls,
                                "mean_ms": round(s.mean_ms, 3), "total_ms": round(s.total_ms, 3)})
                for s in pg.slowest_statements])
    if report.wal_archive and report.wal_archive.window_from:
        archive = report.wal_archive
        metadata["recovery_window"] = (f"{archive.window_from.isoformat(timespec='seconds')} to "
                                       f"{archive.window_to.isoformat(timespec='seconds')}"
                                       + (f" (after {archive.gaps} gap(s) in the archive)" if archive.gaps else ""))
    if report.redis:
        metadata["queues"] = dg.MetadataValue.table(schema=QUEUES, records=[
            dg.TableRecord({"queue": name, "length": d.length, "pending": d.pending, "dead_letters": d.dead_letters})
            for name, d in report.redis.queues.items()])
    if report.elasticsearch:
        metadata["indices"] = dg.MetadataValue.table(schema=INDICES, records=[
            dg.TableRecord({"index": i.index, "documents": i.documents, "store_bytes": i.store_bytes})
            for i in report.elasticsearch.indices])
    if report.errors:
        metadata["errors"] = dg.MetadataValue.md("\n".join(f"- {service}: {why}" for service, why in report.errors.items()))
    return with_human_sizes(metadata)


@dg.asset(
    name=keys.SYSTEM_METRICS, group_name=keys.OPERATIONS_GROUP, kinds={"postgres", "redis", "elasticsearch"},
    owners=["team:data-platform"], deps=[keys.index_key("system_metrics")],
    code_version=code_version(metrics, pg_metrics, redis_metrics, es_metrics), freshness_policy=METRICS_FRESHNESS,
    description="The data layer's own figures, sampled into the system_metrics index: PostgreSQL connections by "
                "state, transactions, cache hit ratio, database and largest table sizes, slowest statements "
                "(pg_stat_statements, when installed); Redis memory, hit rate, clients, ops/s, queue depths; "
                "Elasticsearch heap, documents and size per index, search and indexing rates; with the WAL archive "
                "on, the RPO right now (archive lag in bytes and seconds) and the recovery window covered (from, "
                "to, days). The headline numbers "
                "are metadata, plotted by the UI. A server that cannot be reached fails the run after the others' "
                "samples are written.",
)
def system_metrics(context: dg.AssetExecutionContext, postgres: PostgresResource, redis: RedisResource,
                   elasticsearch: ElasticsearchResource) -> dg.MaterializeResult:
    try:
        report = collect_and_write(postgres.engine, redis.client, elasticsearch.client, elasticsearch.layout(),
                                   sampled_at_of(context.run.tags),
                                   wal_archive=probe_of(postgres.settings, postgres.url()))
    except (MetricsError, SearchError) as exc:
        raise dg.Failure(description=str(exc)) from None
    metadata = metrics_metadata(report)
    context.log.info(f"system metrics at {report.sampled_at.isoformat()}: {report.written.written} samples written, "
                     f"{report.written.already_present} already there")
    if report.errors:
        raise dg.Failure(description="no samples from " + "; ".join(f"{s}: {why}" for s, why in report.errors.items()),
                         metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=system_metrics, name=keys.FRESHNESS, metadata=runbook_metadata(FRESHNESS_SECTION),
                description=described(f"The newest sample in the system_metrics index is younger than "
                                      f"{SAMPLES_MAX_AGE.total_seconds() / 60:.0f} minutes (samples every 5).",
                                      FRESHNESS_SECTION))
def check_system_metrics_freshness(elasticsearch: ElasticsearchResource) -> dg.AssetCheckResult:
    try:
        found = sample_freshness(elasticsearch.client, elasticsearch.layout(), SAMPLES_MAX_AGE.total_seconds() / 3600)
    except MetricsError as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc),
                                   metadata=runbook_metadata(FRESHNESS_SECTION))
    return freshness_check_result(found, FRESHNESS_SECTION,
                                  repair="orchestrator-data metrics collect, and turn system_metrics_schedule on")


METRICS_ASSETS = [system_metrics]
METRICS_ASSET_CHECKS = [check_system_metrics_freshness]
