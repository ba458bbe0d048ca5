"""How old the newest good backups are, against the two promises the schedules make:

* the newest **verified** backup (its sha256 re-checked after it was written) is younger than
  BACKUP_MAX_AGE_HOURS — nightly backups, so a day plus slack;
* the newest **restore-checked** backup (restored into a scratch database and compared) is younger
  than RESTORE_CHECK_MAX_AGE_DAYS — weekly restore checks, so a week plus slack.

Separate because they run at different rates: measuring the nightly promise by the weekly check would
alert every week. The freshness asset checks and the stale-backup sensor both read these.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from orchestrator_data.backups.catalog import latest_restore_checked, latest_verified
from orchestrator_data.freshness import Freshness, age_hours, freshness

__all__ = ["Freshness", "age_hours", "restore_check_freshness", "verified_freshness"]


def verified_freshness(backup_dir: Path, max_age_hours: float, now: datetime | None = None) -> Freshness:
    return freshness("verified", latest_verified(backup_dir), max_age_hours, now)


def restore_check_freshness(backup_dir: Path, max_age_hours: float, now: datetime | None = None) -> Freshness:
    return freshness("restore-checked", latest_restore_checked(backup_dir), max_age_hours, now)
