"""Snapshots on the real node: the repository, exact counts in the metadata, restore checks that pass,
fail (a document removed from the restored copy) and see live changes as changes, retention, freshness,
and a snapshot whose own file is gone from the repository (listed as broken, skipped, pruned)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import errors, locks, snapshot_checks, snapshots, sync
from orchestrator_data.search.indices import NAMES
from orchestrator_data.search.snapshots import Repository, RepositoryError, SnapshotNotFound
from tests.search_snapshots import break_snapshot, delete_repository

pytestmark = pytest.mark.integration


@pytest.fixture
def repository(es, layout):
    # the layout's unique prefix as the name and location: tests never see each other's snapshots
    repository = Repository(f"{layout.prefix}-snapshots", layout.prefix)
    yield repository
    delete_repository(es, repository)


@pytest.fixture
def synced(engine, es, layout):
    seed(engine, "testing", SeedPlan(executions=80))
    sync.create_indices(engine, es, layout)
    sync.sync(engine, es, layout)
    es.index(index=layout.write_alias("system_metrics"), refresh=True,
             document={"sampled_at": "2026-12-01T00:00:00Z", "service": "redis", "metric": "cpu", "value": 0.5})
    return engine


def _restorecheck_indices(es, layout) -> list[str]:
    return list(es.indices.get(index=f"{layout.prefix}-restorecheck-*", allow_no_indices=True,
                               expand_wildcards="all"))


def test_repository_registration_is_idempotent_and_a_location_outside_path_repo_is_named(es, layout, repository):
    assert snapshots.ensure_repository(es, repository) is True
    assert snapshots.ensure_repository(es, repository) is False
    assert es.snapshot.get_repository(name=repository.name)[repository.name]["settings"]["location"] == layout.prefix

    outside = Repository(f"{layout.prefix}-elsewhere", "/definitely/not/under/path_repo")
    with pytest.raises(RepositoryError) as raised:
        snapshots.ensure_repository(es, outside)
    message = str(raised.value)
    assert "SEARCH_SNAPSHOT_LOCATION" in message and "path.repo" in message and "\n" not in message


def test_create_records_exact_counts_then_restore_check_passes_and_leaves_nothing(synced, es, layout, repository):
    info = snapshots.create_snapshot(synced, es, layout, repository)
    assert info.state == "SUCCESS" and info.name.startswith(f"{layout.prefix}-")
    assert snapshots._name_pattern(layout).fullmatch(info.name)
    live = {name: es.count(index=layout.read_alias(name))["count"] for name in NAMES}
    assert info.recorded == {f"{name}-v1-000001": live[name] for name in NAMES}
    assert info.documents == sum(live.values()) and live["executions"] == 80 and live["system_metrics"] == 1
    assert info.size_bytes and info.size_bytes > 0
    assert sorted(info.indices) == sorted(layout.backing(name, 1) for name in NAMES)

    result = snapshot_checks.restore_check(synced, es, layout, repository, "latest")
    assert result.ok, result.problems
    by_index = {c.index: c for c in result.indices}
    assert by_index["executions"].recorded == by_index["executions"].restored == by_index["executions"].live == 80
    assert by_index["executions"].sampled == 50 and by_index["executions"].equal == 50
    assert by_index["system_metrics"].restored == 1
    assert _restorecheck_indices(es, layout) == []
    assert all(name.startswith(f"{layout.prefix}-restorecheck-") for name in result.restored_indices)

    [listed] = snapshots.list_snapshots(es, repository, layout, synced)
    assert listed.name == info.name and listed.restore_check.ok and listed.size_bytes == info.size_bytes
    assert listed.restore_check.summary["indices"][1]["index"] == "executions"


def test_a_document_missing_from_the_restored_copy_fails_the_check_and_still_cleans_up(synced, es, layout,
                                                                                      repository):
    info = snapshots.create_snapshot(synced, es, layout, repository)
    removed = []

    def remove_one(restored: list[str]) -> None:
        [copy] = [name for name in restored if name.endswith("-workflows-v1-000001")]
        hit = es.search(index=copy, size=1, query={"match_all": {}})["hits"]["hits"][0]
        es.delete(index=copy, id=hit["_id"])
        removed.append(hit["_id"])
        assert _restorecheck_indices(es, layout)  # the copies exist while the check runs

    result = snapshot_checks.restore_check(synced, es, layout, repository, info.name, after_restore=remove_one)
    assert not result.ok and removed
    [problem] = [p for p in result.problems if "recorded" in p]
    assert "workflows-v1-000001" in problem and "restored" in problem
    assert _restorecheck_indices(es, layout) == []
    assert snapshots.list_snapshots(es, repository, layout, synced)[0].restore_check.ok is False

    def explode(restored):
        raise RuntimeError("the hook failed")

    with pytest.raises(RuntimeError):
        snapshot_checks.restore_check(synced, es, layout, repository, info.name, after_restore=explode)
    assert _restorecheck_indices(es, layout) == []


def test_live_updates_and_deletes_after_the_snapshot_are_changes_not_failures(synced, es, layout, repository):
    snapshots.create_snapshot(synced, es, layout, repository)
    with synced.begin() as conn:
        conn.execute(sa.text("UPDATE workflows SET description = 'changed since' WHERE id IN "
                             "(SELECT id FROM workflows ORDER BY id LIMIT 5)"))
        conn.execute(sa.text("UPDATE workflows SET deleted_at = now() WHERE id IN "
                             "(SELECT id FROM workflows ORDER BY id DESC LIMIT 3)"))
    sync.sync(synced, es, layout, ["workflows"])
    workflows = es.count(index=layout.read_alias("workflows"))["count"]

    result = snapshot_checks.restore_check(synced, es, layout, repository, sample_size=10_000)
    assert result.ok, result.problems
    check = {c.index: c for c in result.indices}["workflows"]
    assert check.changed == 8 and check.equal == check.sampled - 8
    assert check.live == workflows == check.restored - 3


def test_an_unknown_snapshot_is_not_found(synced, es, layout, repository):
    with pytest.raises(SnapshotNotFound):
        snapshot_checks.restore_check(synced, es, layout, repository, "latest")
    with pytest.raises(SnapshotNotFound):
        snapshot_checks.restore_check(synced, es, layout, repository, f"{layout.prefix}-20260101-000000-abcd")


def test_prune_keeps_the_newest_n_successful_and_never_the_newest(synced, es, layout, repository):
    start = datetime(2026, 12, 1, tzinfo=UTC)
    made = [snapshots.create_snapshot(synced, es, layout, repository, now=start + timedelta(minutes=i)).name
            for i in range(4)]
    assert [s.name for s in snapshots.list_snapshots(es, repository, layout)] == made

    dry = snapshots.prune(es, repository, layout, keep=2, dry_run=True)
    assert dry.deleted == made[:2] and dry.kept == made[2:]
    assert len(snapshots.list_snapshots(es, repository, layout)) == 4
    done = snapshots.prune(es, repository, layout, keep=2)
    assert done.deleted == made[:2]
    assert [s.name for s in snapshots.list_snapshots(es, repository, layout)] == made[2:]
    assert snapshots.prune(es, repository, layout, keep=1).deleted == [made[2]]
    assert snapshots.prune(es, repository, layout, keep=1).deleted == []
    assert [s.name for s in snapshots.list_snapshots(es, repository, layout)] == [made[3]]
    with pytest.raises(snapshots.SnapshotError):
        snapshots.prune(es, repository, layout, keep=0)


def test_freshness_of_both_promises(synced, es, layout, repository):
    assert not snapshots.snapshot_freshness(es, repository, layout, 26).ok
    assert snapshots.snapshot_freshness(es, repository, layout, 26).cursor == "none"
    info = snapshots.create_snapshot(synced, es, layout, repository)
    fresh = snapshots.snapshot_freshness(es, repository, layout, 26)
    assert fresh.ok and fresh.cursor == info.name and "search snapshot" in fresh.describe()
    later = info.started_at + timedelta(hours=27)
    assert not snapshots.snapshot_freshness(es, repository, layout, 26, now=later).ok

    assert snapshot_checks.restore_check_freshness(synced, repository, layout, 8 * 24).entry is None
    assert snapshot_checks.restore_check(synced, es, layout, repository).ok
    checked = snapshot_checks.restore_check_freshness(synced, repository, layout, 8 * 24)
    assert checked.ok and checked.cursor == info.name
    # still fresh once retention deleted the checked snapshot: the record is in PostgreSQL
    snapshots.create_snapshot(synced, es, layout, repository)
    assert snapshots.prune(es, repository, layout, keep=1).deleted == [info.name]
    assert snapshot_checks.restore_check_freshness(synced, repository, layout, 8 * 24).cursor == info.name
    assert not snapshot_checks.restore_check_freshness(synced, repository, layout, 8 * 24,
                                                 now=info.started_at + timedelta(days=9)).ok


def _info(name: str, state: str, minute: int) -> snapshots.SnapshotInfo:
    return snapshots.SnapshotInfo(name, state, datetime(2026, 12, 1, 0, minute, tzinfo=UTC), None, [], {})


def test_prune_selection_of_failed_partial_and_running_snapshots():
    found = [_info("a", "SUCCESS", 0), _info("b", "FAILED", 1), _info("c", "SUCCESS", 2), _info("d", "PARTIAL", 3),
             _info("e", "SUCCESS", 4), _info("f", "FAILED", 5), _info("g", "IN_PROGRESS", 6)]
    # older successes beyond keep, and failures older than the newest success; never a running one, nor a
    # failure newer than the newest success (kept to look at)
    assert snapshots.to_prune(found, keep=2) == ["a", "b", "d"]
    assert snapshots.to_prune(found, keep=1) == ["a", "b", "c", "d"]
    assert snapshots.to_prune(found, keep=10) == ["b", "d"]
    assert snapshots.to_prune([_info("x", "FAILED", 0), _info("y", "IN_PROGRESS", 1)], keep=1) == []


def test_a_snapshot_waits_for_a_running_sync_and_holds_no_lock_when_it_gives_up(synced, es, layout, repository):
    with locks.index_lock(synced, layout.read_alias("executions")):
        with pytest.raises(errors.SyncBusy, match="executions"):
            snapshots.create_snapshot(synced, es, layout, repository, wait_s=0.5)
        # all or none: the locks taken before the busy one were released
        with locks.index_lock(synced, layout.read_alias("workflows")):
            pass
    assert snapshots.create_snapshot(synced, es, layout, repository, wait_s=0.5).state == "SUCCESS"


def test_counts_fall_back_to_one_per_index_when_per_backing_would_not_fit_the_metadata():
    layout = snapshots.Layout("od")
    few = {name: [layout.backing(name, 1)] for name in NAMES}
    counts = {index: 7 for indices in few.values() for index in indices}
    assert snapshots._recorded_counts(layout, few, counts) == {f"{n}-v1-000001": 7 for n in NAMES}
    many = {**few, "system_metrics": [layout.backing("system_metrics", 1, g) for g in range(1, 60)]}
    counts = {index: 3 for indices in many.values() for index in indices}
    assert snapshots._recorded_counts(layout, many, counts) == {**{n: 3 for n in NAMES}, "system_metrics": 3 * 59}


def test_a_snapshot_whose_file_is_gone_is_named_as_broken_skipped_by_latest_and_pruned(synced, es, layout,
                                                                                       repository):
    older = snapshots.create_snapshot(synced, es, layout, repository)
    time.sleep(1.1)  # the node stamps start times from a clock it ticks every 200 ms, names by the second
    broken = snapshots.create_snapshot(synced, es, layout, repository)  # the newest: what `latest` was
    assert broken.started_at > older.started_at
    removed = break_snapshot(es, repository, broken.name)

    listed = snapshots.list_snapshots(es, repository, layout, synced)  # with sizes and checks, as `list` asks
    assert [s.name for s in listed] == [older.name, broken.name]
    assert listed[0].state == "SUCCESS" and listed[0].size_bytes == older.size_bytes and listed[0].problem is None
    assert listed[1].state == snapshots.BROKEN and listed[1].size_bytes is None and listed[1].indices == []
    assert removed.name in listed[1].problem and "\n" not in listed[1].problem
    assert listed[1].as_dict()["problem"] == listed[1].problem and listed[1].as_dict()["state"] == "BROKEN"

    # `latest` is the newest snapshot that can be read; it restores, and its check is recorded
    result = snapshot_checks.restore_check(synced, es, layout, repository, "latest")
    assert result.snapshot == older.name and result.ok, result.problems
    # the broken one, by name: one line naming it, nothing restored, nothing recorded
    with pytest.raises(snapshots.SnapshotError) as raised:
        snapshot_checks.restore_check(synced, es, layout, repository, broken.name)
    message = str(raised.value)
    assert broken.name in message and "cannot be read" in message and "\n" not in message
    assert _restorecheck_indices(es, layout) == []
    assert set(snapshots.latest_restore_checks(synced, repository)) == {older.name}
    assert snapshots.snapshot_freshness(es, repository, layout, 24).cursor == older.name

    # a new snapshot beside it still works; prune deletes the broken one (counted) and keeps the rest
    newest = snapshots.create_snapshot(synced, es, layout, repository)
    dry = snapshots.prune(es, repository, layout, keep=5, dry_run=True)
    assert dry.deleted == [broken.name] and dry.kept == [older.name, newest.name]
    pruned = snapshots.prune(es, repository, layout, keep=5)
    assert pruned.deleted == [broken.name] and pruned.kept == [older.name, newest.name]
    assert [s.name for s in snapshots.list_snapshots(es, repository, layout)] == [older.name, newest.name]


def test_prune_selection_deletes_broken_snapshots_only_beside_a_readable_success():
    broken = snapshots.BROKEN
    assert snapshots.to_prune([_info("a", "SUCCESS", 0), _info("b", "SUCCESS", 1), _info("c", broken, 2)],
                              keep=5) == ["c"]
    assert snapshots.to_prune([_info("a", broken, 0), _info("b", "SUCCESS", 1)], keep=1) == ["a"]
    # nothing readable at all: the repository itself may be what is wrong, so nothing is deleted
    assert snapshots.to_prune([_info("a", broken, 0), _info("b", "FAILED", 1)], keep=1) == []


def test_a_broken_snapshot_sorts_by_the_second_in_its_name_after_the_readable_ones_of_that_second():
    # its start time is lost with its file: the name's second is all that is left of it
    layout = snapshots.Layout("od")

    def at(name: str, state: str, second: int, micro: int = 0) -> snapshots.SnapshotInfo:
        when = datetime(2026, 12, 1, 0, 0, second, micro, tzinfo=UTC)
        return snapshots.SnapshotInfo(name, state, when, None, [], {})

    found = [at("od-20261201-000002-0000", "SUCCESS", 2, 100_000), at("od-20261201-000001-0000", snapshots.BROKEN, 1),
             at("od-20261201-000001-ffff", "SUCCESS", 1, 900_000), at("od-20261201-000000-aaaa", snapshots.BROKEN, 0),
             at("od-20261201-000001-1111", "SUCCESS", 1, 200_000)]
    ordered = sorted(found, key=lambda s: snapshots._order(layout, s))
    assert [s.name for s in ordered] == ["od-20261201-000000-aaaa", "od-20261201-000001-1111", "od-20261201-000001-ffff",
                                         "od-20261201-000001-0000", "od-20261201-000002-0000"]
