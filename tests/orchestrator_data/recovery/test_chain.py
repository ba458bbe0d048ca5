"""The physical chain on a real cluster: random targets of each kind restored exactly from one
archive and two base backups (a full one and an incremental), gaps found with their window, an
archiver killed -9 that loses nothing, a tampered base backup refused."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from orchestrator_data.recovery import base_backups, report, restore, wal
from orchestrator_data.recovery.errors import ArchiveCorrupt, RecoveryRefused
from orchestrator_data.recovery.layout import Layout, lsn_to_int, segment_name
from orchestrator_data.recovery.targets import Target
from tests.recovery_chain import SEGMENT, stop_restored

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("RECOVERY_TEST_SEED", random.randrange(1 << 30)))


@pytest.fixture
def chain(recovery_chain):
    return recovery_chain


def _restore_and_read(chain, target: Target) -> tuple[list[int], restore.RestoreResult]:
    into = chain.root / f"restored-{target.kind}-{random.randrange(1 << 30)}"
    # scratch: read and dropped, as the recovery check does (fsync off, stopped immediately)
    result = restore.restore(chain.layout, target, into, key_for=chain.key_for, scratch=True)
    try:
        with psycopg.connect(host=str(into), port=result.port, user="postgres", dbname="postgres") as conn:
            assert conn.execute("SHOW fsync").fetchone()[0] == "off"
        assert "fsync" not in (into / "postgresql.auto.conf").read_text()  # never kept in the directory
        return chain.rows(into, result.port), result
    finally:
        stop_restored(into)


# Targets of each kind per run: the 20 in all by default (about 0.7 s a restore, 14 s; RECOVERY_TEST_TARGETS=1 for 4).
PER_KIND = int(os.environ.get("RECOVERY_TEST_TARGETS", "5"))


def _targets(chain, rng: random.Random) -> list[tuple[Target, int]]:
    """PER_KIND random targets of each kind, with the last row each must recover."""
    marks = chain.marks[:20]
    picks = []
    for mark in rng.choices(marks[:-1], k=PER_KIND):
        picks.append((Target("time", time=mark.after), mark.i))
    for mark in rng.choices(marks[:-1], k=PER_KIND):
        picks.append((Target("lsn", lsn=lsn_to_int(mark.lsn)), mark.i))
    for mark in rng.choices(marks[:-1], k=PER_KIND):
        picks.append((Target("xid", xid=mark.xid), mark.i))
    for mark in rng.choices([m for m in marks if m.point], k=PER_KIND):
        picks.append((Target("name", name=mark.point), mark.i))
    return picks


def test_random_targets_are_restored_exactly(chain):
    rng = random.Random(SEED)
    for target, last_row in _targets(chain, rng):
        rows, result = _restore_and_read(chain, target)
        assert rows == list(range(1, last_row + 1)), f"seed {SEED}: {target.describe()} gave {rows}"
        assert result.recovered_to_lsn and result.seconds > 0
        expected_chain = ([chain.full.id, chain.incremental.id] if last_row > 10 else [chain.full.id])
        if target.kind in ("time", "lsn"):
            assert result.base_backups == expected_chain


def test_a_reused_restore_point_name_restores_to_its_newest_occurrence(chain):
    rows, result = _restore_and_read(chain, Target("name", name="twice"))
    assert rows == list(range(1, 18))
    assert "newest" in result.note


def test_the_archive_is_sealed_encrypted_but_the_partial_segment(chain):
    files = wal.list_archive(chain.layout.wal, SEGMENT)
    sealed = [f for f in files if not f.partial]
    assert sealed and all(f.encrypted for f in sealed)
    assert not [p for p in chain.layout.wal.iterdir() if p.name.endswith(tuple("0123456789ABCDEF"))]


def test_both_base_backups_verify_and_an_incremental_one_is_smaller(chain):
    assert chain.incremental.parent == chain.full.id
    assert chain.incremental.size_bytes < chain.full.size_bytes / 2
    for backup in (chain.full, chain.incremental):
        assert base_backups.verify(chain.layout, backup, chain.key_for)["ok"]


def _copy_layout(chain, name: str) -> Layout:
    """A copy of the archive to break: segments hard-linked (only removed, never written), base backups copied."""
    copy = Layout(chain.root / name)
    shutil.copytree(chain.layout.wal, copy.wal, copy_function=os.link)
    shutil.copytree(chain.layout.base, copy.base)
    shutil.copy(chain.layout.archive_info, copy.archive_info)
    return copy


def test_a_missing_segment_is_found_with_the_window_it_costs(chain):
    copy = _copy_layout(chain, "gap")
    by_i = {m.i: m for m in chain.marks}
    segno = lsn_to_int(by_i[7].lsn) // SEGMENT
    missing = segment_name(1, segno, SEGMENT)
    victim = next(p for p in copy.wal.iterdir() if p.name.startswith(missing))
    victim.unlink()
    gaps = report.gap_windows(copy, chain.key_for)
    assert [(g["first_missing"], g["last_missing"]) for g in gaps] == [(missing, missing)]
    gap = gaps[0]
    assert gap["unrestorable_from"] == by_i[5].committed_at.isoformat()
    assert gap["healed_by"] == chain.incremental.id
    with pytest.raises(RecoveryRefused, match=f"outside the recovery window.*{missing} is missing"):
        restore.restore(copy, Target("time", time=by_i[8].after), chain.root / "never", key_for=chain.key_for)
    assert not (chain.root / "never").exists()
    assert not [p for p in copy.root.iterdir() if p.name.startswith(".tmp")]


def test_a_tampered_base_backup_is_refused(chain):
    copy = _copy_layout(chain, "tampered")
    backup = base_backups.get_base_backup(copy, chain.full.id)
    data = bytearray(backup.data_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    backup.data_file.write_bytes(bytes(data))
    with pytest.raises(ArchiveCorrupt, match="does not match its manifest"):
        base_backups.verify(copy, backup, chain.key_for)
    # the manifest's hash made to match: the encryption's authentication still refuses it
    import hashlib

    manifest = json.loads((backup.path / base_backups.MANIFEST).read_text())
    manifest["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (backup.path / base_backups.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArchiveCorrupt, match="fails authentication"):
        base_backups.verify(copy, base_backups.get_base_backup(copy, chain.full.id), chain.key_for)
    with pytest.raises(ArchiveCorrupt):
        restore.restore(copy, Target("lsn", lsn=lsn_to_int(chain.marks[2].lsn)), chain.root / "from-tampered",
                        key_for=chain.key_for)
    assert not (chain.root / "from-tampered").exists()


def _as_first_format(layout: Layout) -> None:
    """Manifests as base backups were written before the envelope id (format 1): proved by their sha256."""
    for backup in base_backups.list_base_backups(layout):
        manifest = json.loads((backup.path / base_backups.MANIFEST).read_text())
        assert manifest.pop("envelope_id") and manifest["format"] == 2
        manifest["format"] = 1
        (backup.path / base_backups.MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("form", [2, 1])
def test_a_swapped_base_backup_file_is_refused_by_the_restore_single_pass(chain, form):
    """The restore checks the stored file in the same pass that decrypts and unpacks it. A whole valid file
    of the same key put in another backup's place authenticates chunk by chunk; its envelope id (format 2)
    or the sha256 (format 1), compared at the stream's end, refuses it before any server starts on it."""
    copy = _copy_layout(chain, f"swapped-{form}")
    if form == 1:
        _as_first_format(copy)
    full = base_backups.get_base_backup(copy, chain.full.id)
    incremental = base_backups.get_base_backup(copy, chain.incremental.id)
    shutil.copyfile(incremental.data_file, full.data_file)
    manifest = json.loads((full.path / base_backups.MANIFEST).read_text())
    manifest["size_bytes"] = incremental.size_bytes  # past the size check; the sha256 and the id stay the full's
    (full.path / base_backups.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArchiveCorrupt, match="does not match its manifest"):
        restore.restore(copy, Target("lsn", lsn=lsn_to_int(chain.marks[2].lsn)), chain.root / "from-swapped",
                        key_for=chain.key_for)
    assert not (chain.root / "from-swapped").exists()


def test_base_backups_of_the_first_format_still_restore(chain):
    copy = _copy_layout(chain, "first-format")
    _as_first_format(copy)
    mark = chain.marks[14]   # after the incremental: both pieces, each proved by its sha256
    into = chain.root / "from-first-format"
    result = restore.restore(copy, Target("lsn", lsn=lsn_to_int(mark.lsn)), into, key_for=chain.key_for, scratch=True)
    try:
        assert result.base_backups == [chain.full.id, chain.incremental.id]
        assert chain.rows(into, result.port) == list(range(1, mark.i + 1))
    finally:
        stop_restored(into)


def test_targets_outside_the_window_are_refused(chain):
    before = chain.full.started_at.replace(microsecond=0)
    with pytest.raises(RecoveryRefused, match="outside the recovery window"):
        restore.restore(chain.layout, Target("time", time=before), chain.root / "early", key_for=chain.key_for)
    with pytest.raises(RecoveryRefused, match="outside the recovery window"):
        restore.restore(chain.layout, Target("lsn", lsn=lsn_to_int("FF/0")), chain.root / "late", key_for=chain.key_for)
    with pytest.raises(RecoveryRefused, match="no restore point 'nope'"):
        restore.restore(chain.layout, Target("name", name="nope"), chain.root / "late", key_for=chain.key_for)
    assert not (chain.root / "early").exists() and not (chain.root / "late").exists()


def test_the_recovery_check_proves_a_random_point_and_finds_a_gap(chain):
    from orchestrator_data.recovery.check import history, run_check
    from tests.recovery_chain import SLOT

    rng = random.Random(SEED)
    result = run_check(chain.primary, chain.layout, slot=SLOT, key_for=chain.key_for, rng=rng)
    assert result.ok, result.problems
    assert result.markers_found == result.markers_expected > 0 and result.unexpected == []
    assert result.recovery_seconds > 0 and result.rpo_lag_bytes is not None
    assert [h["ok"] for h in history(chain.layout)] == [True]
    # the application tables (here: marks) compared with what the source held at the target
    assert result.tables_compared >= 1 and result.table_differences == [] and result.tables_not_compared == []
    # the same check on an archive that lost a segment (choosing between two runs' markers) reports the gap
    copy = _copy_layout(chain, "check-gap")
    by_i = {m.i: m for m in chain.marks}
    missing = segment_name(1, lsn_to_int(by_i[7].lsn) // SEGMENT, SEGMENT)
    next(p for p in copy.wal.iterdir() if p.name.startswith(missing)).unlink()
    result = run_check(chain.primary, copy, slot=SLOT, key_for=chain.key_for, rng=rng)
    assert not result.ok and [g["first_missing"] for g in result.gaps] == [missing]


def test_the_recovery_check_finds_a_table_that_differs_from_the_source_at_the_target(chain, monkeypatch):
    from orchestrator_data.recovery import check
    from tests.recovery_chain import SLOT

    real = check._fingerprints

    def one_row_more(layout, run):
        recorded = real(layout, run)
        recorded["tables"]["marks"] = {**recorded["tables"]["marks"], "rows": recorded["tables"]["marks"]["rows"] + 1}
        return recorded

    monkeypatch.setattr(check, "_fingerprints", one_row_more)
    result = check.run_check(chain.primary, chain.layout, slot=SLOT, key_for=chain.key_for, rng=random.Random(SEED))
    assert not result.ok and result.markers_found == result.markers_expected  # the markers alone would pass
    assert [d for d in result.table_differences if d.startswith("table marks:") and "rows restored" in d]


def test_an_archiver_killed_with_sigkill_and_restarted_loses_nothing(chain):
    """Last in the module: it adds rows after the marks."""
    archiver = chain.archiver
    receiver = [p for p in psutil.Process(archiver.pid).children() if "pg_receivewal" in p.name()]
    assert receiver
    with chain.connect() as conn:
        conn.execute("INSERT INTO marks (i) SELECT g FROM generate_series(101, 150) g")
        archiver.send_signal(signal.SIGKILL)
        archiver.wait(10)
        psutil.wait_procs(receiver, timeout=10)  # it dies with its parent (PR_SET_PDEATHSIG)
        assert not any(p.is_running() for p in receiver)
        conn.execute("INSERT INTO marks (i) SELECT g FROM generate_series(151, 200) g")  # while nobody archives
        conn.execute("SELECT pg_switch_wal()")
        conn.execute("INSERT INTO marks (i) VALUES (201)")
    chain.start_archiver()
    chain.wait_archived()
    rows, _ = _restore_and_read(chain, Target("latest"))
    assert rows[:len(chain.marks)] == [m.i for m in chain.marks] and rows[len(chain.marks):] == list(range(101, 202))
