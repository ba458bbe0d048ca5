"""Retention of the logical dumps: the recovery window and a keep-N rule, plus optional calendar rules.

The policy (RECOVERY_WINDOW_DAYS, BACKUP_KEEP_LAST): a backup is pruned when it is older than the
window ("any moment in the last N days can be restored") **and** not among the newest N. Optional
calendar rules keep, besides, the newest backup of each of the last `keep_daily` UTC days and
`keep_weekly` ISO weeks (a period without a backup keeps nothing). The newest verified backup
(sha256 re-checked) and the newest restore-checked backup are never deleted, whatever the policy
says, so a restore is always possible from a checked backup. Backups dated after `now` (clock skew)
are kept. The same rule runs from `backup prune` and from postgres_backup_prune_job (daily).

`prune` also removes abandoned working directories (`.tmp-*` of a killed `backup create`, `.restore-*`
of a killed restore check, `.deleting-*` of a killed prune) older than a grace period; one whose
process still runs is never removed (workdirs.py says how that is told)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from orchestrator_data.backups import workdirs
from orchestrator_data.backups.catalog import BackupEntry, list_backups
from orchestrator_data.backups.workdirs import DEFAULT_GRACE, WorkDir


@dataclass
class PruneResult:
    kept: list[BackupEntry] = field(default_factory=list)
    deleted: list[BackupEntry] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)  # kept id -> why ("within the 7-day window", ...)
    temporary_removed: list[WorkDir] = field(default_factory=list)  # abandoned working directories
    temporary_kept: list[WorkDir] = field(default_factory=list)     # in use, or younger than the grace
    # the rule it applied
    window_days: float | None = None
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        return sum(e.size_bytes for e in self.deleted)

    @property
    def oldest_kept(self) -> BackupEntry | None:
        return min(self.kept, key=lambda e: (e.created_at, e.id)) if self.kept else None

    def as_dict(self) -> dict:
        oldest = self.oldest_kept
        return {"kept": [e.id for e in self.kept], "deleted": [e.id for e in self.deleted], "reasons": self.reasons,
                "bytes_freed": self.bytes_freed, "oldest_kept": oldest.id if oldest else None,
                "rule": {"window_days": self.window_days, "keep_last": self.keep_last, "keep_daily": self.keep_daily,
                         "keep_weekly": self.keep_weekly},
                "temporary_removed": [w.as_dict() for w in self.temporary_removed],
                "temporary_kept": [w.as_dict() for w in self.temporary_kept]}


def _week(day: date) -> tuple[int, int]:
    iso = day.isocalendar()
    return iso.year, iso.week


def plan_prune(entries: list[BackupEntry], keep_daily: int = 0, keep_weekly: int = 0,
               now: datetime | None = None, *, window_days: float | None = None, keep_last: int = 0) -> PruneResult:
    """Decide, without touching anything. Deterministic for given entries and now. `window_days`:
    keep every backup created within that many days of `now`; `keep_last`: keep the newest N."""
    if keep_daily < 0 or keep_weekly < 0 or keep_last < 0 or (window_days is not None and window_days < 0):
        raise ValueError("keep_daily, keep_weekly, keep_last and window_days must be >= 0")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    window_start = now - timedelta(days=window_days) if window_days is not None else None
    today = now.date()
    days = {today - timedelta(days=i) for i in range(keep_daily)}
    weeks = {_week(today - timedelta(weeks=i)) for i in range(keep_weekly)}
    newest_first = sorted(entries, key=lambda e: (e.created_at, e.id), reverse=True)
    reasons: dict[str, list[str]] = {}
    seen_days: set[date] = set()
    seen_weeks: set[tuple[int, int]] = set()
    for entry in newest_first:
        created = entry.created_at.astimezone(UTC)
        if created > now:
            reasons.setdefault(entry.id, []).append("newer than now")
            continue
        if window_start is not None and created >= window_start:
            reasons.setdefault(entry.id, []).append(f"within the {window_days:g}-day window")
        day, week = created.date(), _week(created.date())
        if day in days and day not in seen_days:
            seen_days.add(day)
            reasons.setdefault(entry.id, []).append(f"daily {day.isoformat()}")
        if week in weeks and week not in seen_weeks:
            seen_weeks.add(week)
            reasons.setdefault(entry.id, []).append(f"weekly {week[0]}-W{week[1]:02d}")
    for rank, entry in enumerate(newest_first[:keep_last], start=1):
        reasons.setdefault(entry.id, []).append(f"newest {rank} of {keep_last}")
    # the newest backup known good at each level is kept whatever the calendar says
    for reason, good in (("newest verified", lambda e: e.verified_ok is True),
                         ("newest restore-checked", lambda e: e.restore_check_ok is True)):
        keep = next((e for e in newest_first if good(e)), None)
        if keep is not None:
            reasons.setdefault(keep.id, []).append(reason)
    kept = [e for e in newest_first if e.id in reasons]
    deleted = [e for e in newest_first if e.id not in reasons]
    return PruneResult(kept, deleted, reasons, window_days=window_days, keep_last=keep_last, keep_daily=keep_daily,
                       keep_weekly=keep_weekly)


def prune(backup_dir: Path, keep_daily: int = 0, keep_weekly: int = 0, now: datetime | None = None, *,
          window_days: float | None = None, keep_last: int = 0, dry_run: bool = False,
          temp_grace: timedelta = DEFAULT_GRACE) -> PruneResult:
    """Apply the policy to BACKUP_DIR: delete the directories of the backups it does not keep, and the
    abandoned working directories older than `temp_grace` (by their files' mtime, not `now`)."""
    result = plan_prune(list_backups(backup_dir), keep_daily, keep_weekly, now, window_days=window_days,
                        keep_last=keep_last)
    result.dry_run = dry_run
    if not dry_run:
        for entry in result.deleted:
            # hide it first (a "." name is never listed), so a crash mid-delete leaves no half backup
            # listed; locked meanwhile, so a concurrent prune does not take it for an abandoned one
            with workdirs.in_use(entry.path):
                hidden = entry.path.with_name(f"{workdirs.DELETING_PREFIX}{entry.id}")
                entry.path.rename(hidden)
                shutil.rmtree(hidden)
    result.temporary_removed, result.temporary_kept = workdirs.remove_abandoned(backup_dir, temp_grace,
                                                                                 dry_run=dry_run)
    return result
