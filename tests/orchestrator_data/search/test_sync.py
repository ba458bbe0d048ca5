"""The PostgreSQL → Elasticsearch sync on the real servers: full, incremental, deletes (soft and hard),
a parent's change reaching its children, out-of-order commits, replays, a node that is gone, and one
copy per document across backing indices."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.postgres.tenancy import delete_rows, tenant_transaction
from orchestrator_data.search import bulk, indices, locks, sync, watermarks
from orchestrator_data.search.errors import SyncBusy, SyncError
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import SYNCED, Change
from orchestrator_data.stack.common import free_port
from tests.search_contents import documents, rows
from tests.search_indices import roll_over

pytestmark = pytest.mark.integration



@pytest.fixture
def seeded(engine, es, layout):
    seed(engine, "testing", SeedPlan(executions=300))
    indices.init_indices(es, layout)
    return engine


def _one(engine, statement: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(statement), params).first()


def test_full_then_incremental_keeps_every_index_equal_to_postgres(seeded, es, layout):
    engine = seeded
    reports = sync.sync(engine, es, layout)
    assert [r.mode for r in reports] == ["full"] * len(SYNCED)
    for name in SYNCED:
        assert set(documents(es, layout, name)) == rows(engine, name), name
        assert watermarks.lag(engine, layout, name).rows_behind == 0
    executions = documents(es, layout, "executions")
    some = next(iter(executions.values()))["_source"]
    workflow = _one(engine, "SELECT name, engine_type FROM workflows WHERE id = :id", id=some["workflow_id"])
    assert (some["workflow_name"], some["engine_type"]) == tuple(workflow)

    # nothing changed: an incremental run writes nothing
    again = sync.sync(engine, es, layout, ["workflows", "executions"])
    assert [(r.mode, r.documents_written, r.documents_deleted) for r in again] == [("incremental", 0, 0)] * 2


def test_changes_deletes_and_a_renamed_parent_reach_the_index(seeded, es, layout):
    engine = seeded
    sync.sync(engine, es, layout)
    org, workflow_id = _one(engine, "SELECT organization_id, workflow_id FROM executions "
                                    "GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1")
    children = {str(i) for i in _rows_where(engine, "SELECT id FROM executions WHERE workflow_id = :w", w=workflow_id)}
    victim = _one(engine, "SELECT id FROM executions WHERE workflow_id <> :w LIMIT 1", w=workflow_id)[0]
    listing = _one(engine, "SELECT id, organization_id FROM marketplace_items WHERE deleted_at IS NULL LIMIT 1")
    with tenant_transaction(engine, org) as conn:
        conn.execute(sa.text("UPDATE workflows SET name = 'Renamed pipeline' WHERE id = :w"), {"w": workflow_id})
    with engine.begin() as conn:  # as the owner: a hard delete and a soft delete in other organizations
        conn.execute(sa.text("DELETE FROM executions WHERE id = :id"), {"id": victim})
        conn.execute(sa.text("UPDATE marketplace_items SET deleted_at = now() WHERE id = :id"), {"id": listing[0]})
    lag = watermarks.lag(engine, layout, "executions")
    assert lag.rows_behind >= 2 and lag.seconds_behind >= 0

    reports = {r.index: r for r in sync.sync(engine, es, layout)}
    assert reports["executions"].mode == "incremental"
    assert reports["executions"].documents_written == len(children)
    assert reports["executions"].documents_deleted == 1
    executions = documents(es, layout, "executions")
    assert str(victim) not in executions
    assert all(executions[c]["_source"]["workflow_name"] == "Renamed pipeline" for c in children)
    assert documents(es, layout, "workflows")[str(workflow_id)]["_source"]["name"] == "Renamed pipeline"
    assert str(listing[0]) not in documents(es, layout, "marketplace")
    for name in SYNCED:
        assert set(documents(es, layout, name)) == rows(engine, name), name


def _rows_where(engine, statement: str, **params) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(statement), params).scalars())


def test_a_change_committed_late_by_a_longer_transaction_is_not_lost(seeded, es, layout):
    engine = seeded
    sync.sync(engine, es, layout, ["workflows"])
    first, second = _rows_where(engine, "SELECT id FROM workflows WHERE deleted_at IS NULL ORDER BY id LIMIT 2")
    long_running = engine.connect()
    tx = long_running.begin()
    # T1 writes first (its transaction id is the lower one) ...
    long_running.execute(sa.text("UPDATE workflows SET description = 'written by the long transaction' "
                                 "WHERE id = :id"), {"id": first})
    # ... T2 writes later and commits first
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE workflows SET description = 'written by the short transaction' "
                             "WHERE id = :id"), {"id": second})
    report = sync.sync_index(engine, es, layout, "workflows")
    docs = documents(es, layout, "workflows")
    assert docs[str(second)]["_source"]["description"] == "written by the short transaction"
    assert docs[str(first)]["_source"].get("description") != "written by the long transaction"
    t1 = long_running.execute(sa.text("SELECT txid_current()")).scalar_one()
    assert report.watermark_to <= t1  # the watermark stops below the transaction still in flight
    tx.commit()
    long_running.close()

    sync.sync_index(engine, es, layout, "workflows")
    assert documents(es, layout, "workflows")[str(first)]["_source"]["description"] == "written by the long transaction"


def test_a_replayed_or_reordered_batch_never_turns_a_document_back(seeded, es, layout):
    engine = seeded
    sync.sync(engine, es, layout, ["workflows"])
    workflow = _rows_where(engine, "SELECT id FROM workflows WHERE deleted_at IS NULL LIMIT 1")[0]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE workflows SET name = 'v2' WHERE id = :id"), {"id": workflow})
    sync.sync_index(engine, es, layout, "workflows")
    current = documents(es, layout, "workflows")[str(workflow)]
    assert current["_source"]["name"] == "v2" and current["_version"] == 2

    # replay what the first (older) state looked like, as a retried batch would
    old = Change(str(workflow), 1, {**current["_source"], "name": "v1"})
    report = SyncReport("workflows", "incremental", 0, 0)
    backing, target = bulk.backing_indices(es, layout, "workflows")
    bulk.write_changes(es, layout, "workflows", [old], report, backing, target)
    assert report.stale_skipped == 1 and report.documents_written == 0
    assert documents(es, layout, "workflows")[str(workflow)]["_source"]["name"] == "v2"

    # a full re-sync rebuilds the index from the rows: every document written once, none regressed
    full = sync.sync_index(engine, es, layout, "workflows", full=True)
    assert full.documents_written == full.rows_read == len(rows(engine, "workflows")) and full.stale_skipped == 0
    rebuilt = documents(es, layout, "workflows")[str(workflow)]
    assert rebuilt["_source"]["name"] == "v2" and rebuilt["_version"] == 2


def test_an_unreachable_node_fails_the_run_and_leaves_the_watermark(seeded, es, layout):
    engine = seeded
    sync.sync(engine, es, layout, ["executions"])
    before = watermarks.load_state(engine, layout.read_alias("executions")).watermark
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE executions SET status = 'cancelled' WHERE id IN "
                             "(SELECT id FROM executions LIMIT 5)"))
    dead = Elasticsearch(f"http://127.0.0.1:{free_port()}", max_retries=0, request_timeout=2)
    with pytest.raises(SyncError, match="watermark stays"):
        sync.sync_index(engine, dead, layout, "executions")
    assert watermarks.load_state(engine, layout.read_alias("executions")).watermark == before
    report = sync.sync_index(engine, es, layout, "executions")
    assert report.documents_written == 5
    assert Counter(d["_source"]["status"] for d in documents(es, layout, "executions").values())["cancelled"] >= 5


def test_an_update_after_a_rollover_stays_in_the_backing_index_that_holds_it(seeded, es, layout):
    engine = seeded
    sync.sync(engine, es, layout, ["executions"])
    old_index = indices.write_index(es, layout, "executions")
    roll_over(es, layout, "executions")
    new_index = indices.write_index(es, layout, "executions")
    assert new_index != old_index
    assert indices.index_status(es, layout, "executions").backing_indices == sorted([old_index, new_index])
    execution = _rows_where(engine, "SELECT id FROM executions LIMIT 1")[0]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE executions SET status = 'timed_out' WHERE id = :id"), {"id": execution})
        conn.execute(sa.text("INSERT INTO executions (organization_id, workflow_id, workflow_version) "
                             "SELECT organization_id, workflow_id, 1 FROM executions LIMIT 1"))
    sync.sync_index(engine, es, layout, "executions")
    es.indices.refresh(index=layout.read_alias("executions"))
    copies = es.search(index=layout.read_alias("executions"), query={"ids": {"values": [str(execution)]}})
    assert copies["hits"]["total"]["value"] == 1
    assert copies["hits"]["hits"][0]["_index"] == old_index
    assert copies["hits"]["hits"][0]["_source"]["status"] == "timed_out"
    assert set(documents(es, layout, "executions")) == rows(engine, "executions")


def test_tenant_deletes_through_tenant_delete_reach_the_index(seeded, es, layout):
    engine = seeded
    sync.sync(engine, es, layout, ["executions"])
    org, execution = _one(engine, "SELECT organization_id, id FROM executions LIMIT 1")
    with tenant_transaction(engine, org) as conn:
        assert delete_rows(conn, "executions", id=execution) == 1
    assert sync.sync_index(engine, es, layout, "executions").documents_deleted == 1
    assert str(execution) not in documents(es, layout, "executions")


def test_two_syncs_of_one_index_never_run_at_once(seeded, es, layout):
    engine = seeded
    sync.sync(engine, es, layout, ["workflows"])
    alias = layout.read_alias("workflows")
    with locks.index_lock(engine, alias):
        with pytest.raises(SyncBusy, match="another sync"):
            sync.sync_index(engine, es, layout, "workflows")
    errors = []
    threads = [threading.Thread(target=lambda: _try(engine, es, layout, errors)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(e, SyncBusy) for e in errors)


def test_sync_lock_waits_for_its_holder_when_asked(engine, layout):
    alias = layout.read_alias("workflows")
    held = threading.Event()

    def hold():
        with locks.index_lock(engine, alias):
            held.set()
            time.sleep(0.6)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    with pytest.raises(SyncBusy):
        with locks.index_lock(engine, alias, wait_s=0.1):
            pass
    started = time.monotonic()
    with locks.index_lock(engine, alias, wait_s=10):
        assert time.monotonic() - started < 5
    holder.join()


def _try(engine, es, layout, errors):
    try:
        sync.sync_index(engine, es, layout, "workflows")
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)


def test_unknown_and_unsynced_index_names_are_refused(engine, es, layout):
    with pytest.raises(indices.UnknownIndex):
        sync.sync(engine, es, layout, ["nope"])
    with pytest.raises(SyncError, match="not synced"):
        sync.sync(engine, es, layout, ["system_metrics"])
    with pytest.raises(SyncError, match="search init"):
        sync.sync_index(engine, es, layout, "workflows")
