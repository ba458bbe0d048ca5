"""How old the newest good backups are, against the two promises the schedules make:

* the newest **verified** backup (its sha256 re-checked after it was written) is younger than
  BACKUP_MAX_AGE_HOURS — nightly backups, so a day plus slack;
* the newest **restore-checked** backup (restored into a scratch database and compared) is younger
  than RESTORE_CHECK_MAX_AGE_DAYS — weekly restore tests, so a week plus slack.

Separate because they run at different rates: measuring the nightly promise by the weekly check would
alert every week. The freshness asset checks and the stale-backup sensor both read these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestrator_data.backups.catalog import BackupEntry, latest_restore_checked, latest_verified


@dataclass(frozen=True)
class Freshness:
    promise: str                # "verified" | "restore-checked"
    entry: BackupEntry | None   # the newest backup that keeps the promise's condition, if any
    age_hours: float | None
    max_age_hours: float

    @property
    def ok(self) -> bool:
        return self.age_hours is not None and self.age_hours <= self.max_age_hours

    @property
    def cursor(self) -> str:
        """What a sensor remembers having alerted about: this backup's id, or 'none'."""
        return self.entry.id if self.entry else "none"

    def describe(self) -> str:
        if self.entry is None:
            return f"no {self.promise} backup"
        return (f"newest {self.promise} backup {self.entry.id} is {self.age_hours:.1f} h old "
                f"(limit {self.max_age_hours:g} h)")


def age_hours(entry: BackupEntry | None, now: datetime | None = None) -> float | None:
    if entry is None:
        return None
    return ((now or datetime.now(UTC)) - entry.created_at).total_seconds() / 3600


def verified_freshness(backup_dir: Path, max_age_hours: float, now: datetime | None = None) -> Freshness:
    entry = latest_verified(backup_dir)
    return Freshness("verified", entry, age_hours(entry, now), max_age_hours)


def restore_check_freshness(backup_dir: Path, max_age_hours: float, now: datetime | None = None) -> Freshness:
    entry = latest_restore_checked(backup_dir)
    return Freshness("restore-checked", entry, age_hours(entry, now), max_age_hours)

