"""The point-in-time recovery figures, when the WAL archive is on: the RPO right now (how far the archive
is behind the server, in bytes and seconds) and the recovery window it covers (from the oldest moment
that can be restored to the archive's newest write, in days). Read from the server's replication views
and the archive's file names only: nothing is decrypted, so a run stays cheap."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orchestrator_data.metrics.samples import BYTES, Sample

SERVICE = "wal_archive"
SECONDS = "seconds"
DAYS = "days"


@dataclass(frozen=True)
class ArchiveProbe:
    """Where to look: the archived server, RECOVERY_DIR and the archiver's slot."""

    url: str
    root: str
    slot: str


def probe_of(settings, postgres_url: str) -> ArchiveProbe | None:
    """The probe for these settings, or None when WAL_ARCHIVE_MODE is off (no figures, no error)."""
    if settings.wal_archive_mode == "off":
        return None
    return ArchiveProbe(postgres_url, str(settings.recovery_root), settings.wal_archive_slot)


@dataclass
class ArchiveFigures:
    samples: list[Sample] = field(default_factory=list)
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    window_from: datetime | None = None    # the oldest moment that can be restored (after the last gap)
    window_to: datetime | None = None      # the archive's newest write
    window_days: float | None = None
    gaps: int = 0


def restorable_from(layout) -> tuple[datetime | None, int]:
    """The oldest restorable moment: the oldest base backup's consistency point, or, when the archive
    has gaps, the first base backup taken after the newest gap; and the number of gaps."""
    from orchestrator_data.recovery import wal
    from orchestrator_data.recovery.base_backups import list_base_backups

    backups = list_base_backups(layout)
    info = layout.read_archive_info()
    if not backups or not info:
        return None, 0
    gaps = wal.find_gaps(layout.wal, int(info["segment_size"]), backups[0].start_lsn)
    if gaps:
        after = [b for b in backups if b.start_lsn >= gaps[-1].to_lsn]
        return (after[0].finished_at if after else None), len(gaps)
    return backups[0].finished_at, 0


def collect(probe: ArchiveProbe, now: datetime | None = None) -> ArchiveFigures:
    from orchestrator_data.recovery.layout import Layout
    from orchestrator_data.recovery.server import Primary
    from orchestrator_data.recovery.status import archive_status, last_archived_at

    layout = Layout(Path(probe.root))
    status = archive_status(Primary(probe.url), layout, probe.slot)
    figures = ArchiveFigures(lag_bytes=status.lag_bytes, lag_seconds=status.lag_seconds)
    start, figures.gaps = restorable_from(layout)
    now = now or datetime.now(UTC)
    # streaming with nothing outstanding: the archive holds everything up to now
    end = now if status.streaming and status.lag_bytes == 0 else last_archived_at(layout)
    if start is not None and end is not None and end >= start:
        figures.window_from, figures.window_to = start, end
        figures.window_days = (end - start).total_seconds() / 86400
    labels = {"slot": probe.slot}
    if figures.lag_bytes is not None:
        figures.samples.append(Sample(SERVICE, "archive_lag_bytes", figures.lag_bytes, BYTES, labels))
    if figures.lag_seconds is not None:
        figures.samples.append(Sample(SERVICE, "archive_lag_seconds", figures.lag_seconds, SECONDS, labels))
    if figures.window_days is not None:
        figures.samples += [
            Sample(SERVICE, "recovery_window_days", figures.window_days, DAYS, labels),
            Sample(SERVICE, "recovery_window_from", figures.window_from.timestamp(), SECONDS, labels),
            Sample(SERVICE, "recovery_window_to", figures.window_to.timestamp(), SECONDS, labels),
        ]
    return figures
