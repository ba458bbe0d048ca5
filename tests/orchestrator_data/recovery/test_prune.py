"""Pruning under the recovery window, on a catalogue of manifests and segment names (no server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from orchestrator_data.recovery.layout import Layout, int_to_lsn, segment_name
from orchestrator_data.recovery.prune import plan_prune, prune

SEGMENT = 1 << 20
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _backup(layout: Layout, backup_id: str, days_ago: float, segno: int, parent: str | None = None) -> None:
    finished = NOW - timedelta(days=days_ago)
    directory = layout.base / backup_id
    directory.mkdir(parents=True)
    (directory / "base.tar").write_bytes(b"x" * 10)
    (directory / "manifest.json").write_text(json.dumps({
        "id": backup_id, "kind": "incremental" if parent else "full", "parent": parent, "timeline": 1,
        "start_lsn": int_to_lsn(segno * SEGMENT + 40), "end_lsn": int_to_lsn(segno * SEGMENT + 400),
        "started_at": (finished - timedelta(minutes=1)).isoformat(), "finished_at": finished.isoformat(),
        "size_bytes": 10, "sha256": "0" * 64, "key_id": None, "system_identifier": "1"}))


def _layout(tmp_path) -> Layout:
    layout = Layout(tmp_path / "recovery")
    layout.ensure()
    layout.archive_info.write_text(json.dumps({"system_identifier": "1", "segment_size": SEGMENT}))
    for segno in range(1, 41):
        (layout.wal / segment_name(1, segno, SEGMENT)).write_bytes(b"w")
    (layout.wal / (segment_name(1, 41, SEGMENT) + ".partial")).write_bytes(b"p")
    (layout.wal / "00000002.history").write_text("1\t0/1\tno recovery target\n")
    return layout


def test_the_window_the_newest_before_it_and_an_incremental_chain_are_kept(tmp_path):
    layout = _layout(tmp_path)
    _backup(layout, "a-full-old", 20, 2)
    _backup(layout, "b-full", 10, 10)
    _backup(layout, "c-incr", 8, 14, parent="b-full")       # before the window, but the newest before it
    _backup(layout, "d-full", 5, 20)
    _backup(layout, "e-incr", 1, 30, parent="d-full")
    plan = plan_prune(layout, window_days=7, keep_count=1, now=NOW)
    # c-incr restores moments at the window's start, and needs b-full
    assert plan.keep == ["b-full", "c-incr", "d-full", "e-incr"]
    assert plan.delete_backups == ["a-full-old"]
    assert plan.wal_kept_from == int_to_lsn(10 * SEGMENT + 40)
    assert plan.delete_wal == sorted(segment_name(1, n, SEGMENT) for n in range(1, 10))


def test_keep_count_wins_over_the_window_and_dry_run_deletes_nothing(tmp_path):
    layout = _layout(tmp_path)
    _backup(layout, "a-full", 30, 5)
    _backup(layout, "b-full", 20, 25)
    dry = prune(layout, window_days=7, keep_count=2, dry_run=True, now=NOW)
    assert dry.keep == ["a-full", "b-full"] and dry.delete_backups == [] and dry.dry_run
    done = prune(layout, window_days=7, keep_count=1, now=NOW)
    assert done.delete_backups == ["a-full"] and not (layout.base / "a-full").exists()
    left = sorted(p.name for p in layout.wal.iterdir())
    assert left[0] == segment_name(1, 25, SEGMENT)  # from the oldest kept backup's segment on
    assert segment_name(1, 41, SEGMENT) + ".partial" in left and "00000002.history" in left
    assert not [p for p in layout.base.iterdir() if p.name.startswith(".")]


def test_no_base_backup_prunes_nothing(tmp_path):
    layout = _layout(tmp_path)
    plan = prune(layout, window_days=7, keep_count=2, now=NOW)
    assert plan.delete_backups == [] and plan.delete_wal == [] and plan.notes


def test_recovery_check_fingerprints_older_than_the_oldest_kept_backup_go(tmp_path):
    layout = _layout(tmp_path)
    _backup(layout, "a-full", 30, 5)
    _backup(layout, "b-full", 20, 25)
    fingerprints = layout.root / "check_tables"
    fingerprints.mkdir()
    for run, days_ago in (("old", 25), ("kept", 19)):
        (fingerprints / f"{run}.json").write_text(json.dumps({
            "run": run, "target_time": (NOW - timedelta(days=days_ago)).isoformat(), "tables": {}, "changing": []}))
    done = prune(layout, window_days=7, keep_count=1, now=NOW)
    assert done.delete_check_tables == ["old.json"]
    assert sorted(p.name for p in fingerprints.iterdir()) == ["kept.json"]
