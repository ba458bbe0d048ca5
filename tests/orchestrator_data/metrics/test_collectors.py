"""Each collector against the test stack's real server: the figures are there and plausible."""

from __future__ import annotations

import sqlalchemy as sa
import pytest

from orchestrator_data.metrics import elasticsearch as es_metrics
from orchestrator_data.metrics import postgres as pg_metrics
from orchestrator_data.metrics import redis as redis_metrics
from orchestrator_data.redis.keyspace import QUEUE_TYPES
from orchestrator_data.redis.queues import WorkQueue
from orchestrator_data.search.indices import init_indices

pytestmark = pytest.mark.integration


def by_metric(samples, metric):
    return {tuple(sorted(s.labels.items())): s for s in samples if s.metric == metric}


def one(samples, metric):
    [sample] = [s for s in samples if s.metric == metric]
    return sample


def test_postgres_connections_transactions_sizes_and_largest_tables(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE metrics_big AS SELECT g AS n, repeat('x', 200) AS pad "
                             "FROM generate_series(1, 20000) g"))
        conn.execute(sa.text("ANALYZE metrics_big"))
    figures = pg_metrics.collect(engine, largest_tables=3)
    samples = figures.samples
    database = figures.database
    connections = by_metric(samples, "connections")
    assert sum(s.value for s in connections.values()) >= 1          # at least the collector's own
    states = {dict(labels)["state"] for labels in connections}
    assert {"active", "idle", "idle in transaction"} <= states
    assert connections[(("database", database), ("state", "active"))].value >= 1
    assert one(samples, "database_size").value > 1_000_000
    assert one(samples, "xact_commit").value > 0 and one(samples, "xact_commit").rate_metric == "xact_commit_rate"
    assert one(samples, "xact_rollback").unit == "count"
    assert 0 < one(samples, "cache_hit_ratio").value <= 1

    assert len(figures.largest_tables) == 3
    biggest = figures.largest_tables[0]
    assert (biggest.schema, biggest.table, biggest.rows_estimate) == ("public", "metrics_big", 20000)
    sizes = by_metric(samples, "table_total_size")
    assert sizes[(("database", database), ("schema", "public"), ("table", "metrics_big"))].value == biggest.total_bytes
    assert biggest.total_bytes > 20000 * 200


def test_postgres_statements_off_when_the_extension_is_not_installed(engine):
    figures = pg_metrics.collect(engine)
    assert not figures.statements_on and "not installed" in figures.statements_note
    assert not [s for s in figures.samples if s.metric.startswith("statement_")]


def test_postgres_slowest_statements_without_constants_or_utility_text(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION pg_stat_statements"))
        conn.execute(sa.text("CREATE TABLE metrics_probe (secret text)"))
        conn.execute(sa.text("SELECT count(*), pg_sleep(0.05) FROM metrics_probe WHERE secret = 'LiteralSecret42'"))
        conn.execute(sa.text("COMMENT ON TABLE metrics_probe IS 'UtilitySecret42'"))
    figures = pg_metrics.collect(engine, slowest_statements=50)
    assert figures.statements_on and figures.statements_note == ""
    probe = [s for s in figures.slowest_statements if "pg_sleep" in s.query]
    assert len(probe) == 1 and probe[0].mean_ms >= 50 and probe[0].calls == 1
    assert "$1" in probe[0].query
    texts = " ".join(str(s.labels) for s in figures.samples)
    assert "LiteralSecret42" not in texts and "UtilitySecret42" not in texts
    means = by_metric(figures.samples, "statement_mean_time")
    assert all(s.unit == "ms" for s in means.values()) and len(means) == len(figures.slowest_statements)


def test_redis_memory_clients_hit_rate_and_queue_depths(redis_client, queue_type):
    queue = WorkQueue(redis_client, queue_type)
    queue.enqueue_many([{"n": i} for i in range(7)])
    redis_client.get("metrics-test-miss")                     # at least one read: the hit rate exists
    figures = redis_metrics.collect(redis_client)
    samples = figures.samples
    assert one(samples, "used_memory").value > 0
    assert one(samples, "connected_clients").value >= 1
    assert 0 <= one(samples, "hit_rate").value <= 1
    assert one(samples, "maxmemory").value > 0                # the stack runs with maxmemory 512mb
    lengths = by_metric(samples, "queue_length")
    assert lengths[(("queue", queue_type),)].value == 7       # found by SCAN: not a declared queue
    assert by_metric(samples, "queue_backlog")[(("queue", queue_type),)].value == 7
    assert {(("queue", t),) for t in QUEUE_TYPES} <= set(lengths)


def test_elasticsearch_heap_and_documents_per_index(es, layout):
    init_indices(es, layout, ("workflows", "marketplace"))
    for i in range(5):
        es.index(index=layout.write_alias("workflows"), id=str(i), document={"name": f"workflow {i}"})
    es.indices.refresh(index=layout.read_alias("workflows"))
    figures = es_metrics.collect(es, layout)
    samples = figures.samples
    assert set(figures.missing_indices) == {"executions", "audit_logs", "system_metrics"}
    documents = by_metric(samples, "documents")
    assert documents[(("index", "workflows"),)].value == 5
    assert documents[(("index", "marketplace"),)].value == 0
    assert by_metric(samples, "indexing_index_total")[(("index", "workflows"),)].value == 5
    assert by_metric(samples, "store_size")[(("index", "workflows"),)].value > 0
    heap = by_metric(samples, "heap_used_ratio")
    assert heap and all(0 < s.value < 1 for s in heap.values())
    assert all(s.value > 0 for s in by_metric(samples, "heap_max").values())
