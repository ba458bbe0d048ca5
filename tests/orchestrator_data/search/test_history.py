"""The sync notices by itself that the database it reads is not the one that wrote the index — the
database moved back in time (here: put back as a copy taken earlier, as a restore or a failover to a
lagging standby leaves it), or the index did (restored from a snapshot) — and rebuilds: no document
from after the point stays, none is missing, and a row rewritten later with a lower row_version than
its stale document's is synced again."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import history, loading, status, sync, watermarks
from orchestrator_data.search.errors import SyncError
from orchestrator_data.search.history import DIFFER, Writer, difference
from orchestrator_data.search.sources import SYNCED
from orchestrator_data.search.snapshots import Repository, create_snapshot
from tests.search_contents import documents, rows
from tests.search_indices import roll_over
from tests.search_snapshots import delete_repository
from tests.time_travel import drop_point, dump, go_back, restore_over, take_point

pytestmark = pytest.mark.integration


@pytest.fixture
def synced(engine, es, layout):
    seed(engine, "testing", SeedPlan(executions=40))
    sync.create_indices(engine, es, layout)
    sync.sync(engine, es, layout)
    return engine


def change_everything(engine) -> dict[str, str]:
    """After the point: a workflow renamed, an execution deleted, one inserted. Returns their ids."""
    with engine.begin() as conn:
        renamed = conn.execute(sa.text("UPDATE workflows SET name = 'renamed after the point' WHERE id = "
                                       "(SELECT id FROM workflows WHERE deleted_at IS NULL ORDER BY id LIMIT 1) "
                                       "RETURNING id")).scalar_one()
        deleted = conn.execute(sa.text("DELETE FROM executions WHERE id = (SELECT id FROM executions ORDER BY id "
                                       "LIMIT 1) RETURNING id")).scalar_one()
        inserted = conn.execute(sa.text("INSERT INTO executions (organization_id, workflow_id, workflow_version) "
                                        "SELECT organization_id, workflow_id, 1 FROM executions LIMIT 1 "
                                        "RETURNING id")).scalar_one()
    return {"renamed": str(renamed), "deleted": str(deleted), "inserted": str(inserted)}


def assert_equal_to_postgres(engine, es, layout) -> None:
    for name in SYNCED:
        assert set(documents(es, layout, name)) == rows(engine, name), name


def test_a_database_moved_back_in_time_is_noticed_by_the_next_plain_sync(synced, stack, migrated_url, es, layout):
    engine = synced
    point = take_point(stack, migrated_url, engine)
    try:
        after = change_everything(engine)
        assert {r.mode for r in sync.sync(engine, es, layout)} == {"incremental"}
        assert documents(es, layout, "workflows")[after["renamed"]]["_source"]["name"] == "renamed after the point"
        assert after["inserted"] in documents(es, layout, "executions")
        go_back(stack, point, engine)
    finally:
        drop_point(stack, point)

    said = {r.name: r for r in status.search_status(engine, es, layout, tuple(SYNCED))}
    assert said["executions"].state == status.State.HISTORIES_DIFFER
    assert "database went back" in said["executions"].histories
    assert said["executions"].describe().startswith("histories differ: " + DIFFER)
    # `status` does not mark it as fine: the index may still show rows the database lost
    from tests.cli.conftest import invoke_cli

    shown = invoke_cli("status", env={"DATABASE_URL": migrated_url, "SEARCH_INDEX_PREFIX": layout.prefix})
    [line] = [line for line in shown.stdout.splitlines() if "search executions" in line]
    assert line.startswith("! search executions") and "histories differ" in line, shown.stdout

    reports = {r.index: r for r in sync.sync(engine, es, layout)}
    # marketplace had nothing written after the point: its index still shares the database's history
    assert {n: r.mode for n, r in reports.items()} == {"workflows": "rebuild", "executions": "rebuild",
                                                       "marketplace": "incremental", "audit_logs": "rebuild"}
    assert all(r.reason.startswith(DIFFER) for r in reports.values() if r.mode == "rebuild")
    assert_equal_to_postgres(engine, es, layout)
    executions = documents(es, layout, "executions")
    assert after["inserted"] not in executions and after["deleted"] in executions
    assert documents(es, layout, "workflows")[after["renamed"]]["_source"]["name"] != "renamed after the point"
    assert {r.state for r in status.search_status(engine, es, layout, tuple(SYNCED))} == {status.State.IN_STEP}

    # the row is rewritten again with the row_version its vanished document had: synced, not "already current"
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE workflows SET name = 'renamed after the recovery' WHERE id = :id"),
                     {"id": after["renamed"]})
    report = sync.sync_index(engine, es, layout, "workflows")
    assert report.mode == "incremental" and report.stale_skipped == 0
    assert documents(es, layout, "workflows")[after["renamed"]]["_source"]["name"] == "renamed after the recovery"


def test_a_logical_restore_over_the_live_database_is_noticed(synced, migrated_url, es, layout, tmp_path):
    engine = synced
    dump(migrated_url, tmp_path / "before.dump")
    after = change_everything(engine)
    assert sync.sync_index(engine, es, layout, "executions").mode == "incremental"
    restore_over(migrated_url, tmp_path / "before.dump", engine)
    report = sync.sync_index(engine, es, layout, "executions")
    assert report.mode == "rebuild" and "the database went back" in report.reason
    assert after["inserted"] not in documents(es, layout, "executions")
    assert set(documents(es, layout, "executions")) == rows(engine, "executions")


def test_an_index_restored_from_an_older_snapshot_is_noticed(synced, es, layout):
    engine = synced
    repository = Repository(f"{layout.prefix}-snapshots", layout.prefix)
    try:
        taken = create_snapshot(engine, es, layout, repository)
        after = change_everything(engine)
        sync.sync(engine, es, layout, ["executions"])
        backing = sorted(es.indices.get_alias(name=layout.read_alias("executions")))
        es.indices.delete(index=",".join(backing))
        es.snapshot.restore(repository=repository.name, snapshot=taken.name, indices=",".join(backing),
                            wait_for_completion=True)
        assert after["inserted"] not in documents(es, layout, "executions")  # the index went back
        report = sync.sync_index(engine, es, layout, "executions")
    finally:
        delete_repository(es, repository)
    assert report.mode == "rebuild" and "the index went back" in report.reason
    assert set(documents(es, layout, "executions")) == rows(engine, "executions")


def test_an_index_in_step_stays_incremental_through_a_rollover_and_a_run_with_nothing_to_write(synced, es, layout):
    engine = synced
    before = history.index_writers(es, layout, "executions")
    assert sync.sync_index(engine, es, layout, "executions").mode == "incremental"  # nothing to write: no claim
    assert history.index_writers(es, layout, "executions") == before
    roll_over(es, layout, "executions")
    change_everything(engine)
    report = sync.sync_index(engine, es, layout, "executions")
    assert report.mode == "incremental" and report.documents_written >= 1
    stamps = history.index_writers(es, layout, "executions")
    [writer] = set(stamps.values())  # the run stamped the new backing index too
    assert len(stamps) == 2 and writer.generation == next(iter(before.values())).generation + 1
    assert set(documents(es, layout, "executions")) == rows(engine, "executions")


def test_a_run_that_failed_after_writing_leaves_the_claim_in_both_places(synced, es, layout, monkeypatch):
    """The claim comes before the first document: a run that fails halfway has already named itself in
    the database and the index, so a database later moved back to before that claim is noticed."""
    engine = synced
    alias = layout.read_alias("executions")
    before = history.database_writer(watermarks.load_state(engine, alias))
    change_everything(engine)

    def fail_after_writing(*args, **kwargs):
        raise RuntimeError("the node went away after the first batch")

    monkeypatch.setattr(loading, "write_changes", fail_after_writing)
    with pytest.raises(RuntimeError):
        sync.sync_index(engine, es, layout, "executions")
    claimed = history.database_writer(watermarks.load_state(engine, alias))
    assert claimed.generation == before.generation + 1
    assert set(history.index_writers(es, layout, "executions").values()) == {claimed}


def test_difference_names_which_side_went_back():
    one, two, three = Writer("a", 1), Writer("b", 2), Writer("c", 2)
    assert difference(one, {"i": one}) is None
    assert difference(None, {"i": None}) is None  # written before the writer was recorded
    assert difference(two, {"i": one, "j": None}).startswith(DIFFER + ": the index went back")
    assert "database went back" in difference(one, {"i": two, "j": None})
    assert "knows no run" in difference(None, {"i": one})
    assert "carries none" in difference(one, {"i": None})
    assert "different runs" in difference(two, {"i": one, "j": two})
    assert "a different run #2" in difference(two, {"i": three})


def test_an_index_deleted_under_a_synced_state_fails_the_run_with_what_to_do(synced, es, layout):
    engine = synced
    es.indices.delete(index=",".join(es.indices.get_alias(name=layout.read_alias("workflows"))))
    with pytest.raises(SyncError, match="run `orchestrator-data search init`"):
        sync.sync_index(engine, es, layout, "workflows")
