"""The writer and a whole run against the real node: every field arrives, a rerun of the same
sampled_at writes nothing twice (also after a rollover), rates come from the index itself, a failed
document fails the write, and the index's lock is honoured."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator_data.metrics import MetricsError, Sample, collect_and_write
from orchestrator_data.metrics.writer import INDEX, write_samples
from orchestrator_data.search import errors, locks
from orchestrator_data.search.indices import init_indices
from tests.search_indices import roll_over

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SAMPLES = [
    Sample("postgres", "connections", 3, "count", {"database": "od", "state": "idle"}),
    Sample("postgres", "connections", 1, "count", {"database": "od", "state": "active"}),
    Sample("redis", "used_memory", 1_234_567, "bytes"),
    Sample("elasticsearch", "search_query_total", 42, "count", {"index": "workflows"}, rate_metric="search_rate"),
]


def stored(es, layout) -> list[dict]:
    es.indices.refresh(index=layout.read_alias(INDEX))
    found = es.search(index=layout.read_alias(INDEX), size=1000, query={"match_all": {}})
    return [{"_id": h["_id"], **h["_source"]} for h in found["hits"]["hits"]]


def test_documents_arrive_with_every_field_and_a_rerun_adds_none(es, engine, metrics_layout):
    layout = metrics_layout
    first = write_samples(es, engine, layout, SAMPLES, T0)
    assert (first.written, first.already_present) == (4, 0)
    docs = stored(es, layout)
    assert len(docs) == 4
    for doc in docs:
        assert set(doc) == {"_id", "service", "metric", "value", "unit", "sampled_at", "labels"}
        assert doc["sampled_at"] == "2026-03-01T12:00:00.000Z"
    idle = next(d for d in docs if d["labels"].get("state") == "idle")
    assert (idle["service"], idle["metric"], idle["value"], idle["unit"]) == ("postgres", "connections", 3.0, "count")
    assert idle["labels"] == {"database": "od", "state": "idle"}

    again = write_samples(es, engine, layout, SAMPLES, T0)
    assert (again.written, again.already_present) == (0, 4)
    roll_over(es, layout, INDEX)   # the write alias now points at an empty index: still no second copy
    after_rollover = write_samples(es, engine, layout, SAMPLES, T0)
    assert (after_rollover.written, after_rollover.already_present) == (0, 4)
    assert len(stored(es, layout)) == 4
    later = write_samples(es, engine, layout, SAMPLES, T0 + timedelta(minutes=5))
    assert later.written == 4 and len(stored(es, layout)) == 8


def test_a_document_the_node_refuses_fails_the_write_loudly(es, engine, metrics_layout):
    backing = es.indices.get_alias(name=metrics_layout.write_alias(INDEX))
    [index] = list(backing)
    es.indices.put_settings(index=index, settings={"index.blocks.write": True})
    try:
        with pytest.raises(MetricsError, match=r"4 of 4 samples were not written to system_metrics"):
            write_samples(es, engine, metrics_layout, SAMPLES, T0)
    finally:
        es.indices.put_settings(index=index, settings={"index.blocks.write": None})


def test_the_write_waits_for_the_index_lock_and_gives_up(es, engine, metrics_layout):
    held, release = threading.Event(), threading.Event()

    def holder():
        with locks.index_lock(engine, metrics_layout.read_alias(INDEX)):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(errors.SyncBusy):
            write_samples(es, engine, metrics_layout, SAMPLES, T0, lock_wait_s=0.5)
    finally:
        release.set()
        thread.join()
    assert write_samples(es, engine, metrics_layout, SAMPLES, T0).written == 4


def test_a_missing_index_is_named(es, engine, layout):
    with pytest.raises(MetricsError, match="the system_metrics index does not exist"):
        write_samples(es, engine, layout, SAMPLES, T0)


def rate_of(report, metric, **labels):
    found = [s for s in report.samples if s.metric == metric and all(s.labels.get(k) == v for k, v in labels.items())]
    return found[0].value if found else None


def test_a_run_collects_all_three_servers_and_rates_come_from_the_previous_run(es, engine, redis_client,
                                                                                metrics_layout):
    layout = metrics_layout
    init_indices(es, layout, ("workflows",))
    now = datetime.now(UTC)
    first = collect_and_write(engine, redis_client, es, layout, now)
    assert first.errors == {}
    assert {s.service for s in first.samples} == {"postgres", "redis", "elasticsearch"}
    assert rate_of(first, "search_rate", index="workflows") is None     # first run: no rate
    assert "es_search_rate" not in first.headline() and "pg_commit_rate" not in first.headline()
    assert first.written.written == len(first.samples)

    for _ in range(30):
        es.search(index=layout.read_alias("workflows"), query={"match_all": {}})
    with engine.connect() as conn:
        for _ in range(12):
            conn.exec_driver_sql("SELECT 1")
            conn.commit()
        # a backend reports its counts when idle, at most once a second: now, not in a second
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
        conn.commit()
    es.indices.refresh(index=layout.read_alias(INDEX))
    second = collect_and_write(engine, redis_client, es, layout, now + timedelta(seconds=60))
    assert rate_of(second, "search_rate", index="workflows") == pytest.approx(30 / 60)
    assert rate_of(second, "xact_commit_rate") >= 12 / 60
    headline = second.headline()
    assert headline["es_search_rate"] >= 30 / 60 and headline["pg_commit_rate"] >= 12 / 60
    assert headline["samples_written"] == len(second.samples)

    # a counter that went down (an index deleted, a restart) gives no rate
    write_samples(es, engine, layout, [Sample("elasticsearch", "search_query_total", 10**9, "count",
                                              {"index": "workflows"}, rate_metric="search_rate")],
                  now + timedelta(seconds=90))
    es.indices.refresh(index=layout.read_alias(INDEX))
    third = collect_and_write(engine, redis_client, es, layout, now + timedelta(seconds=120))
    assert rate_of(third, "search_rate", index="workflows") is None
    assert rate_of(third, "indexing_rate", index="workflows") == 0.0


def test_a_server_that_is_down_is_reported_and_the_others_are_still_written(es, engine, metrics_layout):
    from orchestrator_data.redis.client import create_client
    from orchestrator_data.stack.common import free_port

    dead = create_client(f"redis://:DeadRedisSecret9@127.0.0.1:{free_port()}/0")
    try:
        report = collect_and_write(engine, dead, es, metrics_layout)
    finally:
        dead.close()
    assert set(report.errors) == {"redis"} and "DeadRedisSecret9" not in report.errors["redis"]
    assert {s.service for s in report.samples} == {"postgres", "elasticsearch"}
    assert report.written.written == len(report.samples) > 0
