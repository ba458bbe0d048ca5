"""Pruning the physical chain under the recovery window: any moment of the last RECOVERY_WINDOW_DAYS
stays restorable, and the newest RECOVERY_KEEP_BASE_BACKUPS base backups stay whatever their age.

Kept: those newest backups, every backup finished inside the window, the newest one finished before
it (moments at the window's start replay from it), and every backup an incremental kept needs.
WAL is kept from the oldest kept backup's start on; the segment being written and timeline history
files are never removed. A recovery check's table fingerprints go once their target is older than the
oldest kept backup."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from orchestrator_data.recovery import wal
from orchestrator_data.recovery.base_backups import chain_of, list_base_backups
from orchestrator_data.recovery.layout import Layout, int_to_lsn


@dataclass
class PrunePlan:
    window_start: str
    keep: list[str]
    delete_backups: list[str]
    delete_wal: list[str]
    wal_kept_from: str | None
    delete_check_tables: list[str] = field(default_factory=list)  # recovery check fingerprints no pair can use
    freed_bytes: int = 0
    dry_run: bool = True
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def plan_prune(layout: Layout, window_days: float, keep_count: int, now: datetime | None = None) -> PrunePlan:
    now = now or datetime.now(UTC)
    window_start = now - timedelta(days=window_days)
    backups = list_base_backups(layout)
    keep = {b.id for b in backups[-keep_count:]}
    keep |= {b.id for b in backups if b.finished_at >= window_start}
    before = [b for b in backups if b.finished_at < window_start]
    if before:
        keep.add(before[-1].id)
    for backup in [b for b in backups if b.id in keep]:
        keep |= {piece.id for piece in chain_of(layout, backup)}
    kept = [b for b in backups if b.id in keep]
    deleting = [b for b in backups if b.id not in keep]
    info = layout.read_archive_info() or {}
    delete_wal: list[str] = []
    freed = sum(_size(b.path) for b in deleting)
    kept_from = None
    if kept and info.get("segment_size"):
        segment_size = int(info["segment_size"])
        oldest = min(b.start_lsn for b in kept)
        kept_from = int_to_lsn(oldest)
        first_needed = oldest // segment_size
        for item in wal.list_archive(layout.wal, segment_size):
            if item.segno is not None and not item.partial and item.segno < first_needed:
                delete_wal.append(item.path.name)
                freed += item.path.stat().st_size
    # a check restores only pairs written after the oldest base backup: fingerprints older than the oldest
    # kept one can never be used again (check.py, FINGERPRINTS)
    delete_check_tables = _unusable_fingerprints(layout, min(b.finished_at for b in kept)) if kept else []
    notes = []
    if not backups:
        notes.append("no base backup yet: nothing is pruned (the WAL is kept until a base backup exists)")
    return PrunePlan(window_start.isoformat(), sorted(keep), [b.id for b in deleting], sorted(delete_wal), kept_from,
                     delete_check_tables, freed, True, notes)


def _unusable_fingerprints(layout: Layout, oldest_kept: datetime) -> list[str]:
    import json

    from orchestrator_data.recovery.check import FINGERPRINTS

    directory = layout.root / FINGERPRINTS
    if not directory.is_dir():
        return []
    doomed = []
    for path in sorted(directory.glob("*.json")):
        try:
            target = datetime.fromisoformat(json.loads(path.read_text())["target_time"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: left for a person to look at
        if target < oldest_kept:
            doomed.append(path.name)
    return doomed


def _size(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prune(layout: Layout, window_days: float, keep_count: int, *, dry_run: bool = False,
          now: datetime | None = None) -> PrunePlan:
    result = plan_prune(layout, window_days, keep_count, now)
    result.dry_run = dry_run
    if dry_run:
        return result
    for backup_id in result.delete_backups:
        source = layout.base / backup_id
        doomed = layout.base / f".deleting-{backup_id}"
        source.rename(doomed)  # gone from the listing at once, whatever happens to the removal
        shutil.rmtree(doomed, ignore_errors=True)
    for name in result.delete_wal:
        (layout.wal / name).unlink(missing_ok=True)
    from orchestrator_data.recovery.check import FINGERPRINTS

    for name in result.delete_check_tables:
        (layout.root / FINGERPRINTS / name).unlink(missing_ok=True)
    return result
