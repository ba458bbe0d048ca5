"""A reindex while searches run: none fails, none misses a document, and changes made during the
reindex are in the new index afterwards."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import indices, rebuild, reindex, sync
from orchestrator_data.search.errors import SyncError

pytestmark = pytest.mark.integration


def test_reindex_swaps_atomically_while_searches_run(engine, es, layout):
    seed(engine, "testing", SeedPlan(executions=3000))
    indices.init_indices(es, layout)
    sync.sync(engine, es, layout, ["executions"])
    alias = layout.read_alias("executions")
    expected = es.count(index=alias)["count"]
    assert expected == 3000
    old = indices.write_index(es, layout, "executions")

    counts: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_loop():
        while not stop.is_set():
            try:
                counts.append(es.search(index=alias, size=0, track_total_hits=True,
                                        query={"match_all": {}})["hits"]["total"]["value"])
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(exc)
            time.sleep(0.002)

    searcher = threading.Thread(target=search_loop)
    searcher.start()
    changed: list = []

    def on_progress(report):  # changes made while the new index is being built
        if not changed and report.rows_read >= 1000:
            with engine.begin() as conn:
                changed.extend(conn.execute(sa.text(
                    "UPDATE executions SET status = 'cancelled' WHERE id IN (SELECT id FROM executions "
                    "WHERE status <> 'cancelled' LIMIT 7) RETURNING id")).scalars())

    try:
        done = reindex.reindex(engine, es, layout, "executions", on_progress=on_progress)
    finally:
        time.sleep(0.2)
        stop.set()
        searcher.join()
    assert not errors, errors[:3]
    assert len(counts) > 10 and set(counts) == {expected}, sorted(set(counts))
    assert done.old_indices == [old] and done.new_index == layout.backing("executions", 1, 2)
    assert indices.write_index(es, layout, "executions") == done.new_index
    assert sorted(es.indices.get_alias(name=alias)) == [done.new_index]
    assert not es.indices.exists(index=old)
    assert done.documents == expected and len(changed) == 7 and done.catch_up_passes >= 1
    es.indices.refresh(index=alias)
    statuses = es.search(index=alias, query={"ids": {"values": [str(i) for i in changed]}}, size=10)["hits"]["hits"]
    assert len(statuses) == 7 and {h["_source"]["status"] for h in statuses} == {"cancelled"}
    # the sync goes on from the reindex's watermark, into the new index
    assert sync.sync_index(engine, es, layout, "executions").mode == "incremental"


def test_a_failed_reindex_leaves_the_live_index_alone(engine, es, layout, monkeypatch):
    seed(engine, "testing", SeedPlan(executions=50))
    indices.init_indices(es, layout)
    sync.sync(engine, es, layout, ["workflows"])
    live = indices.write_index(es, layout, "workflows")

    def broken(*args, **kwargs):
        raise SyncError("simulated failure while loading")

    monkeypatch.setattr(rebuild, "load_into", broken)
    with pytest.raises(SyncError, match="simulated"):
        reindex.reindex(engine, es, layout, "workflows")
    assert sorted(es.indices.get_alias(name=layout.read_alias("workflows"))) == [live]
    assert not es.indices.exists(index=layout.backing("workflows", 1, 2))
