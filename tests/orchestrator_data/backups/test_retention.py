"""Retention on synthetic manifests: exactly the policy, deterministic, newest verified always kept;
abandoned working directories removed after the grace period, never one still in use."""

from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator_data.backups import catalog, workdirs
from orchestrator_data.backups.catalog import BackupEntry, get_backup, latest_verified, list_backups
from orchestrator_data.backups.retention import plan_prune, prune

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday, ISO week 2026-W48


def entry(created: datetime, verified: bool | None = None, restore_checked: bool | None = None) -> BackupEntry:
    backup_id = f"{created:%Y%m%dT%H%M%SZ}-0000"
    return BackupEntry(backup_id, Path("/nonexistent") / backup_id, created, created + timedelta(minutes=1), 1, "0" * 64,
                       False, True, "18.6", "0003", created if verified is not None else None, verified,
                       created if restore_checked is not None else None, restore_checked)


def every_12h(days: int = 40) -> list[BackupEntry]:
    return [entry(NOW - timedelta(hours=12 * i)) for i in range(days * 2)]


def ids(entries) -> list[str]:
    return [e.id for e in entries]


def test_daily_and_weekly_keep_exactly_the_policy():
    result = plan_prune(every_12h(), keep_daily=7, keep_weekly=4, now=NOW)
    expected = [f"202611{d:02d}T120000Z-0000" for d in range(25, 18, -1)]  # newest of each of the last 7 days
    expected += ["20261115T120000Z-0000", "20261108T120000Z-0000"]      # newest of W46 and W45 (W48, W47 already)
    assert ids(result.kept) == expected
    assert len(result.deleted) == 80 - 9
    assert result.reasons["20261122T120000Z-0000"] == ["daily 2026-11-22", "weekly 2026-W47"]
    assert result.reasons["20261125T120000Z-0000"] == ["daily 2026-11-25", "weekly 2026-W48"]


def test_deterministic_whatever_the_input_order():
    entries = every_12h()
    first = plan_prune(entries, 3, 2, now=NOW)
    shuffled = entries[:]
    random.Random(7).shuffle(shuffled)
    second = plan_prune(shuffled, 3, 2, now=NOW)
    assert ids(first.kept) == ids(second.kept) and ids(first.deleted) == ids(second.deleted)


def test_newest_verified_is_never_deleted():
    entries = every_12h()
    old_ok = entry(NOW - timedelta(days=60), verified=True)
    older_ok = entry(NOW - timedelta(days=61), verified=True)
    newer_failed = entry(NOW - timedelta(days=50), verified=False)
    result = plan_prune(entries + [old_ok, older_ok, newer_failed], keep_daily=2, keep_weekly=0, now=NOW)
    assert old_ok.id in ids(result.kept) and result.reasons[old_ok.id] == ["newest verified"]
    assert older_ok.id in ids(result.deleted) and newer_failed.id in ids(result.deleted)
    assert len(result.kept) == 3


def test_newest_restore_checked_is_never_deleted_either():
    entries = every_12h()
    checked = entry(NOW - timedelta(days=70), verified=True, restore_checked=True)
    verified = entry(NOW - timedelta(days=60), verified=True, restore_checked=False)
    result = plan_prune(entries + [checked, verified], keep_daily=1, keep_weekly=0, now=NOW)
    assert result.reasons[checked.id] == ["newest restore-checked"]
    assert result.reasons[verified.id] == ["newest verified"]
    assert len(result.kept) == 3


def test_zero_policy_keeps_only_newest_verified_and_future():
    future = entry(NOW + timedelta(hours=1))
    verified = entry(NOW - timedelta(days=3, hours=1), verified=True)
    result = plan_prune(every_12h(5) + [future, verified], 0, 0, now=NOW)
    assert ids(result.kept) == [future.id, verified.id]


def test_gaps_keep_nothing_for_empty_periods():
    entries = [entry(NOW - timedelta(days=d)) for d in (0, 1, 9, 30)]
    result = plan_prune(entries, keep_daily=7, keep_weekly=2, now=NOW)
    # the 25th and 24th are daily; W48's newest is the 25th, W47's (Mon 16th - Sun 22nd) the 16th; Oct 26th is out
    assert ids(result.kept) == ids(entries[:3])
    assert ids(result.deleted) == ids(entries[3:])


def test_negative_policy_is_refused():
    with pytest.raises(ValueError):
        plan_prune([], -1, 0, now=NOW)


def test_the_window_and_keep_last_rule():
    """Pruned when older than the window and not among the newest N."""
    entries = every_12h()
    result = plan_prune(entries, now=NOW, window_days=7, keep_last=3)
    inside = [e for e in entries if e.created_at >= NOW - timedelta(days=7)]
    assert len(inside) == 15 and ids(result.kept) == ids(inside)  # the newest 3 are inside the window too
    assert ids(result.deleted) == ids(entries[15:])
    assert result.reasons[entries[0].id] == ["within the 7-day window", "newest 1 of 3"]
    assert result.reasons[entries[14].id] == ["within the 7-day window"]  # exactly 7 days old: still inside
    assert result.oldest_kept.id == entries[14].id and result.bytes_freed == len(entries) - 15


def test_backups_that_stopped_keep_the_newest_n_and_the_newest_verified():
    """No backup for a month: the window holds none, the newest N stay, and the newest verified one
    stays even when it is not among them."""
    verified = entry(NOW - timedelta(days=45), verified=True)
    stale = [entry(NOW - timedelta(days=30 + i)) for i in range(5)]
    result = plan_prune(stale + [verified], now=NOW, window_days=7, keep_last=2)
    assert ids(result.kept) == ids(stale[:2]) + [verified.id]
    assert result.reasons[verified.id] == ["newest verified"]
    assert ids(result.deleted) == ids(stale[2:])
    assert plan_prune(stale, now=NOW, window_days=7, keep_last=0).kept == []
    with pytest.raises(ValueError):
        plan_prune([], now=NOW, window_days=7, keep_last=-1)


def test_the_window_prunes_on_disk_and_says_what_it_freed(tmp_path):
    new = write_backup(tmp_path, NOW - timedelta(days=1), verified=True)
    old = [write_backup(tmp_path, NOW - timedelta(days=d)) for d in (10, 20)]
    result = prune(tmp_path, now=NOW, window_days=7, keep_last=1)
    assert ids(result.kept) == [new] and ids(result.deleted) == old
    assert result.bytes_freed == 2 and result.as_dict()["oldest_kept"] == new
    assert [e.id for e in list_backups(tmp_path)] == [new]


def write_backup(root: Path, created: datetime, verified: bool | None = None) -> str:
    backup_id = f"{created:%Y%m%dT%H%M%SZ}-abcd"
    d = root / backup_id
    d.mkdir(parents=True)
    (d / "dump.pgc").write_bytes(b"x")
    manifest = {"format": 1, "id": backup_id, "file": "dump.pgc", "created_at": created.isoformat(),
                "finished_at": created.isoformat(), "size_bytes": 1, "sha256": "0" * 64, "server_version": "18.6",
                "migration_head": "0003", "tables": {}, "encryption": None, "compression": {"enabled": True}}
    (d / catalog.MANIFEST).write_text(json.dumps(manifest))
    if verified is not None:
        (d / catalog.INTEGRITY).write_text(json.dumps({"ok": verified, "checked_at": NOW.isoformat()}))
    return backup_id


def test_prune_on_disk_and_catalog(tmp_path):
    made = [write_backup(tmp_path, NOW - timedelta(days=d), verified=(True if d == 20 else None)) for d in range(30)]
    (tmp_path / ".tmp-20261125T130000Z-ffff").mkdir()          # half-written: never listed, never pruned
    (tmp_path / "junk").mkdir()                                 # no manifest: ignored
    assert ids(list_backups(tmp_path)) == made                  # newest first
    assert get_backup(tmp_path, "latest").id == made[0]
    assert latest_verified(tmp_path).id == made[20]
    with pytest.raises(catalog.BackupNotFound):
        get_backup(tmp_path, "../etc")

    dry = prune(tmp_path, 3, 1, now=NOW, dry_run=True)
    assert len(list_backups(tmp_path)) == 30
    result = prune(tmp_path, 3, 1, now=NOW)
    assert ids(result.kept) == ids(dry.kept) == [made[0], made[1], made[2], made[20]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [made[0], made[1], made[2], made[20], ".tmp-20261125T130000Z-ffff", "junk"])


def make_workdir(root: Path, name: str, hours_old: float) -> Path:
    path = root / name
    path.mkdir()
    (path / "dump.pgc").write_bytes(b"x" * 100)
    when = time.time() - hours_old * 3600
    for p in (path / "dump.pgc", path):
        os.utime(p, (when, when))
    return path


def names(items) -> list[str]:
    """Sorted directory names of WorkDirs or paths."""
    return sorted((item.path if isinstance(item, workdirs.WorkDir) else item).name for item in items)


def test_prune_removes_abandoned_working_directories_after_the_grace(tmp_path):
    backup = write_backup(tmp_path, NOW, verified=True)
    abandoned = [make_workdir(tmp_path, name, hours_old=2) for name in
                 (".tmp-20261125T100000Z-aaaa", ".restore-k3j4h5", ".deleting-20261101T000000Z-bbbb")]
    young = make_workdir(tmp_path, ".tmp-20261125T115500Z-cccc", hours_old=0.5)
    running = make_workdir(tmp_path, ".tmp-20261125T020000Z-dddd", hours_old=10)  # a long backup, still going
    foreign = make_workdir(tmp_path, ".cache", hours_old=100)                     # not ours: never touched

    with workdirs.in_use(running):  # what create_backup holds while it runs
        listed = {w.path.name: w for w in workdirs.list_workdirs(tmp_path)}
        assert set(listed) == {p.name for p in [*abandoned, young, running]}
        assert listed[running.name].in_use and not listed[young.name].in_use
        assert listed[".restore-k3j4h5"].kind == "restore-check" and listed[young.name].size_bytes == 100
        dry = prune(tmp_path, 7, 4, now=NOW, dry_run=True)
        assert names(dry.temporary_removed) == names(abandoned) and all(p.exists() for p in abandoned)
        result = prune(tmp_path, 7, 4, now=NOW)
        assert names(result.temporary_removed) == names(abandoned)
        assert names(result.temporary_kept) == names([young, running])
        assert result.as_dict()["temporary_removed"][0]["name"] in {p.name for p in abandoned}
        # no grace at all: the young one goes too, the running one still stays
        result = prune(tmp_path, 7, 4, now=NOW, temp_grace=timedelta(0))
        assert names(result.temporary_removed) == [young.name] and names(result.temporary_kept) == [running.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([backup, running.name, foreign.name])
    assert names(prune(tmp_path, 7, 4, now=NOW).temporary_removed) == [running.name]  # its owner is gone
    with pytest.raises(ValueError):
        prune(tmp_path, 7, 4, now=NOW, temp_grace=timedelta(hours=-1))
