"""One metrics run: collect from the three servers, derive the rates, write everything, sum it up.

A server that cannot be reached does not stop the others: its error is kept in the report
(`errors`), the other servers' samples are still written, and the caller fails the run afterwards
(the asset, the CLI), so an outage is both visible and measured around.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import redis as redis_py
import sqlalchemy as sa
from elasticsearch import ApiError, Elasticsearch, TransportError

from orchestrator_data.errors import OperationFailed
from orchestrator_data.metrics import elasticsearch as es_metrics
from orchestrator_data.metrics import postgres as pg_metrics
from orchestrator_data.metrics import redis as redis_metrics
from orchestrator_data.metrics import replication as replication_metrics
from orchestrator_data.metrics import wal_archive as archive_metrics
from orchestrator_data.metrics.samples import Sample, rates, total, values
from orchestrator_data.metrics.writer import WriteReport, previous_readings, stored_time, write_samples
from orchestrator_data.redaction import describe_error
from orchestrator_data.redis.errors import KeyspaceError
from orchestrator_data.search.indices import Layout


@dataclass
class MetricsReport:
    sampled_at: datetime
    samples: list[Sample] = field(default_factory=list)
    postgres: pg_metrics.PostgresFigures | None = None
    redis: redis_metrics.RedisFigures | None = None
    elasticsearch: es_metrics.ElasticsearchFigures | None = None
    wal_archive: archive_metrics.ArchiveFigures | None = None   # when the WAL archive is on
    errors: dict[str, str] = field(default_factory=dict)      # service -> why it gave no samples
    written: WriteReport | None = None
    duration_s: float = 0.0

    def headline(self) -> dict[str, float]:
        """The figures the Dagster UI plots, under stable keys; a figure not measured this run is left out
        (a rate on the first run, a server that was down)."""
        s = self.samples
        pg, rd, es = "postgres", "redis", "elasticsearch"
        heap = values(s, es, "heap_used_ratio")
        figures = {
            "pg_connections": total(s, pg, "connections"),
            "pg_cache_hit_ratio": total(s, pg, "cache_hit_ratio"),
            "pg_database_bytes": total(s, pg, "database_size"),
            "pg_commit_rate": total(s, pg, "xact_commit_rate"),
            "pg_rollback_rate": total(s, pg, "xact_rollback_rate"),
            "redis_used_memory_bytes": total(s, rd, "used_memory"),
            "redis_hit_rate": total(s, rd, "hit_rate"),
            "redis_clients": total(s, rd, "connected_clients"),
            "redis_ops_per_second": total(s, rd, "ops_per_second"),
            "queue_depth_total": total(s, rd, "queue_length"),
            "es_heap_used_ratio": max(heap) if heap else None,   # the fullest node is the one at risk
            "es_documents": total(s, es, "documents"),
            "es_store_bytes": total(s, es, "store_size"),
            "es_search_rate": total(s, es, "search_rate"),
            "es_indexing_rate": total(s, es, "indexing_rate"),
            "wal_archive_lag_bytes": self.wal_archive.lag_bytes if self.wal_archive else None,
            "wal_archive_lag_seconds": self.wal_archive.lag_seconds if self.wal_archive else None,
            "recovery_window_days": self.wal_archive.window_days if self.wal_archive else None,
            **replication_metrics.worst(self.postgres.replication if self.postgres else None),
            "samples_written": self.written.written if self.written else 0,
            "duration_s": round(self.duration_s, 3),
        }
        return {key: value for key, value in figures.items() if value is not None}


def collect_and_write(engine: sa.Engine, redis_client: redis_py.Redis, es_client: Elasticsearch, layout: Layout,
                      sampled_at: datetime | None = None, *, largest_tables: int = 10,
                      slowest_statements: int = 10,
                      wal_archive: archive_metrics.ArchiveProbe | None = None) -> MetricsReport:
    """Raises MetricsError when the samples cannot be written (the index missing, a failed document).
    `wal_archive` (given when WAL_ARCHIVE_MODE is not off) adds the RPO and the recovery window."""
    started = time.monotonic()
    report = MetricsReport(stored_time(sampled_at or datetime.now(UTC)))
    try:
        report.postgres = pg_metrics.collect(engine, largest_tables=largest_tables,
                                             slowest_statements=slowest_statements)
    except sa.exc.SQLAlchemyError as exc:
        report.errors["postgres"] = describe_error(exc)
    try:
        report.redis = redis_metrics.collect(redis_client)
    except KeyspaceError as exc:
        report.errors["redis"] = str(exc)
    try:
        report.elasticsearch = es_metrics.collect(es_client, layout)
    except (ApiError, TransportError) as exc:
        report.errors["elasticsearch"] = f"{type(exc).__name__}: {str(getattr(exc, 'message', None) or exc)[:300]}"
    if wal_archive is not None:
        try:
            report.wal_archive = archive_metrics.collect(wal_archive, report.sampled_at)
        except (psycopg.Error, OSError, OperationFailed) as exc:  # measured around, as a server's outage
            report.errors["wal_archive"] = describe_error(exc)
    collected = [s for figures in (report.postgres, report.redis, report.elasticsearch, report.wal_archive) if figures
                 for s in figures.samples]
    counters = [s for s in collected if s.rate_metric]
    report.samples = collected + rates(counters, previous_readings(es_client, layout, counters, report.sampled_at),
                                       report.sampled_at)
    report.written = write_samples(es_client, engine, layout, report.samples, report.sampled_at)
    report.duration_s = time.monotonic() - started
    return report
