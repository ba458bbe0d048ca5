"""The full load by month on the real servers: a month loads exactly its rows, a re-run writes nothing
new, the open ends catch every older and later row, partitions share the index's lock (and never run
while a sync, rollover or snapshot holds it), and a never-synced index whose months are all loaded
syncs incrementally from the lowest snapshot xmin and ends exact."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import errors, full_load, indices, locks, sync, watermarks
from orchestrator_data.search.errors import SearchError
from orchestrator_data.search.full_load import InvalidPartition, partition
from tests.search_indices import roll_over

pytestmark = pytest.mark.integration

FIRST = date(2026, 8, 1)                      # SEARCH_PARTITIONS_START of these tests
NOW = datetime(2026, 12, 15, tzinfo=UTC)      # the current (last, open) month: 2026-12
MONTHS = ["2026-08", "2026-09", "2026-10", "2026-11", "2026-12"]
BEFORE, AFTER = datetime(2019, 3, 1, tzinfo=UTC), datetime(2031, 5, 1, tzinfo=UTC)  # outside every month


@pytest.fixture
def seeded(engine, es, layout):
    """300 executions (May to November 2026), one moved before the first month and one after the last;
    audit rows in four months, one older and one later."""
    seed(engine, "testing", SeedPlan(executions=300))
    with engine.begin() as conn:
        early, late = conn.execute(sa.text("SELECT id FROM executions ORDER BY id LIMIT 2")).scalars()
        conn.execute(sa.text("UPDATE executions SET created_at = :t WHERE id = :id"), {"t": BEFORE, "id": early})
        conn.execute(sa.text("UPDATE executions SET created_at = :t WHERE id = :id"), {"t": AFTER, "id": late})
        for when in [BEFORE, AFTER] + [datetime(2026, m, d, tzinfo=UTC) for m in (8, 9, 10, 12) for d in (1, 15, 28)]:
            _audit(conn, when)
    indices.init_indices(es, layout, ("executions", "audit_logs"))
    return engine


def _audit(conn: sa.Connection, when: datetime) -> None:
    conn.execute(sa.text("INSERT INTO audit_logs (actor_role, action, table_name, record_id, occurred_at) "
                         "VALUES ('orchestrator_owner', 'UPDATE', 'organizations', 'x', :t)"), {"t": when})


def _load(engine, es, layout, name: str, month: str, **kwargs) -> full_load.PartitionReport:
    done = full_load.load_partition(engine, es, layout, name, partition(month, FIRST, NOW), **kwargs)
    es.indices.refresh(index=layout.read_alias(name))
    return done


def _ids(engine, statement: str, **params) -> set[str]:
    with engine.connect() as conn:
        return {str(i) for i in conn.execute(sa.text(statement), params).scalars()}


def _documents(es, layout, name: str) -> Counter:
    """Document id -> copies across the backing indices."""
    es.indices.refresh(index=layout.read_alias(name))
    hits = es.search(index=layout.read_alias(name), size=10_000, source=False)["hits"]["hits"]
    return Counter(hit["_id"] for hit in hits)


def test_a_month_loads_exactly_its_rows_a_rerun_nothing_new_and_the_open_ends_the_rest(seeded, es, layout):
    engine = seeded
    september = _load(engine, es, layout, "executions", "2026-09")
    in_september = _ids(engine, "SELECT id FROM executions WHERE created_at >= '2026-09-01' "
                                "AND created_at < '2026-10-01'")
    assert in_september and set(_documents(es, layout, "executions")) == in_september
    assert (september.rows_read, september.documents_written, september.already_current) == (len(in_september),) * 2 + (0,)
    assert september.snapshot_xmin > 0 and september.documents_per_s > 0

    reports = {m: _load(engine, es, layout, "executions", m) for m in MONTHS if m != "2026-09"}
    documents = _documents(es, layout, "executions")
    assert set(documents) == _ids(engine, "SELECT id FROM executions") and set(documents.values()) == {1}
    # the open ends: the first month took the row from 2019, the current month the one from 2031
    assert str(_ids(engine, "SELECT id FROM executions WHERE created_at = :t", t=BEFORE).pop()) in documents
    assert reports["2026-08"].rows_read == len(_ids(engine, "SELECT id FROM executions WHERE created_at < '2026-09-01'"))
    assert reports["2026-12"].rows_read == len(_ids(engine, "SELECT id FROM executions WHERE created_at >= '2026-12-01'"))
    # per month, through the read alias, as many documents as rows
    for month in ("2026-09", "2026-10"):
        found = es.count(index=layout.read_alias("executions"), query={"range": {"created_at": {
            "gte": f"{month}-01", "lt": f"{month}-01||+1M"}}})["count"]
        assert found == reports.get(month, september).rows_read, month

    again = _load(engine, es, layout, "executions", "2026-09")
    assert (again.documents_written, again.already_current) == (0, len(in_september))
    assert _documents(es, layout, "executions") == documents
    assert [r.partition_key for r in full_load.loads(engine, layout.read_alias("executions"))] == \
        ["2026-09", *reports, "2026-09"]


def test_after_a_rollover_a_rerun_rewrites_a_changed_document_where_it_lives(seeded, es, layout):
    engine = seeded
    _load(engine, es, layout, "executions", "2026-10")
    [old_index] = es.indices.get_alias(name=layout.read_alias("executions"))
    roll_over(es, layout, "executions")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE executions SET status = 'cancelled' WHERE id = (SELECT id FROM executions "
                             "WHERE created_at >= '2026-10-01' AND created_at < '2026-11-01' ORDER BY id LIMIT 1)"))
    again = _load(engine, es, layout, "executions", "2026-10")
    assert again.written_to == {old_index: 1} and again.documents_written == 1
    assert set(_documents(es, layout, "executions").values()) == {1}


def test_partitions_share_the_lock_and_wait_for_a_sync_rollover_or_snapshot(seeded, es, layout):
    engine = seeded
    alias = layout.read_alias("audit_logs")
    with locks.index_lock(engine, alias, shared=True):  # another partition at work: this one runs beside it
        assert _load(engine, es, layout, "audit_logs", "2026-09").documents_written == 3
        with pytest.raises(errors.SyncDeferred, match=f"a full load of {alias} is running"):
            sync.sync_index(engine, es, layout, "audit_logs")  # the sync stands aside, it does not fail
    with locks.index_lock(engine, alias):  # exclusive: a sync, rollover or snapshot
        with pytest.raises(errors.SyncBusy, match=f"snapshot of {alias} holds its lock") as busy:
            _load(engine, es, layout, "audit_logs", "2026-10", lock_wait_s=0.3)
        assert not isinstance(busy.value, errors.SyncDeferred)
    assert [r.partition_key for r in full_load.loads(engine, alias)] == ["2026-09"]


def test_a_never_synced_index_whose_months_are_all_loaded_syncs_from_the_lowest_xmin(seeded, es, layout):
    engine = seeded
    assert sync.sync_index(engine, es, layout, "audit_logs", full=False).mode == "full"  # no load: as before
    watermarks.forget(engine, layout.read_alias("audit_logs"))

    xmins = {}
    for name in ("executions", "audit_logs"):
        for month in MONTHS[:-1]:
            xmins.setdefault(name, []).append(_load(engine, es, layout, name, month).snapshot_xmin)
        with pytest.raises(errors.SyncDeferred, match=r"rows of (2026-12 to )?2031-05 have no partition load"):
            sync.sync_index(engine, es, layout, name)  # a full load under way: neither a second one nor a failure
    # changes during the full load, in months already loaded: a new audit row, an execution updated
    with engine.begin() as conn:
        _audit(conn, datetime(2026, 9, 20, tzinfo=UTC))
        [changed] = conn.execute(sa.text("UPDATE executions SET status = 'cancelled' WHERE id = (SELECT id FROM "
                                         "executions WHERE created_at < '2026-09-01' ORDER BY id DESC LIMIT 1) "
                                         "RETURNING id")).scalars()
    for name in ("executions", "audit_logs"):
        xmins[name].append(_load(engine, es, layout, name, MONTHS[-1]).snapshot_xmin)
        report = sync.sync_index(engine, es, layout, name)
        assert (report.mode, report.watermark_from) == ("after_full_load", min(xmins[name]))
        assert watermarks.load_state(engine, layout.read_alias(name)).full_synced_at is not None
    assert set(_documents(es, layout, "audit_logs")) == _ids(engine, "SELECT id FROM audit_logs")
    assert set(_documents(es, layout, "executions")) == _ids(engine, "SELECT id FROM executions")
    es.indices.refresh(index=layout.read_alias("executions"))
    assert es.get(index=layout.read_alias("executions"), id=str(changed))["_source"]["status"] == "cancelled"
    # an index created anew forgets its loads too: its next sync is a full one
    watermarks.forget(engine, layout.read_alias("executions"))
    assert full_load.loads(engine, layout.read_alias("executions")) == []


def test_only_the_months_and_indices_that_have_partitions_are_accepted(es, layout):
    for name in ("workflows", "marketplace", "system_metrics"):  # refused before any server is asked
        with pytest.raises(SearchError, match=f"index '{name}' is not"):
            full_load.load_partition(None, es, layout, name, partition("2026-09", FIRST, NOW))
    for month, problem in [("2026-13", "is not a month"), ("2026-7", "is not a month"),
                           ("2026-07", "has no partition: they run from 2026-08"), ("2027-01", "to 2026-12")]:
        with pytest.raises(InvalidPartition, match=problem):
            partition(month, FIRST, NOW)
    assert partition("2026-08", FIRST, NOW) == full_load.Partition("2026-08", None, datetime(2026, 9, 1, tzinfo=UTC))
    assert partition("2026-12-01", FIRST, NOW) == full_load.Partition("2026-12", datetime(2026, 12, 1, tzinfo=UTC), None)
