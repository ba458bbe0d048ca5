"""The archive's health in one report: status (lag, slot, archiver), the restorable window, and each
gap with the exact window it makes unrestorable."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

from orchestrator_data.recovery import wal
from orchestrator_data.recovery.base_backups import list_base_backups
from orchestrator_data.recovery.layout import Layout, int_to_lsn, segment_name
from orchestrator_data.recovery.status import archive_status


def _commit_times(layout: Layout, item: wal.ArchivedFile, segment_size: int, key_for) -> list[datetime]:
    scratch = layout.scratch("gap")
    try:
        wal.materialize(item, scratch / item.name, key_for)
        index = wal.scan(scratch, item.timeline, item.segno * segment_size, item.segno, segment_size)
        return [c.time for c in index.commits if c.committed]
    except Exception:  # noqa: BLE001 - a segment we cannot read gives no time; the LSNs still stand
        return []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def gap_windows(layout: Layout, key_for=None) -> list[dict]:
    """Each gap of the archive (after the oldest base backup's start) and what it costs: targets from the
    last commit before it until the first base backup taken after it cannot be restored."""
    info = layout.read_archive_info()
    if not info:
        return []
    segment_size = int(info["segment_size"])
    backups = list_base_backups(layout)
    start = backups[0].start_lsn if backups else None
    files = {(f.timeline, f.segno): f for f in wal.list_archive(layout.wal, segment_size) if f.segno is not None}
    windows = []
    for gap in wal.find_gaps(layout.wal, segment_size, start):
        before = files.get((gap.timeline, gap.from_lsn // segment_size - 1))
        after = files.get((gap.timeline, gap.to_lsn // segment_size))
        before_times = _commit_times(layout, before, segment_size, key_for) if before else []
        after_times = _commit_times(layout, after, segment_size, key_for) if after else []
        healed_by = next((b for b in backups if b.start_lsn >= gap.to_lsn), None)
        window = gap.as_dict()
        window.update({
            "last_commit_before": before_times[-1].isoformat() if before_times else None,
            "first_commit_after": after_times[0].isoformat() if after_times else None,
            "unrestorable_from": before_times[-1].isoformat() if before_times else None,
            "unrestorable_from_lsn": int_to_lsn(gap.from_lsn),
            "unrestorable_until": healed_by.finished_at.isoformat() if healed_by else None,
            "unrestorable_until_lsn": int_to_lsn(healed_by.end_lsn) if healed_by else None,
            "healed_by": healed_by.id if healed_by else None,
        })
        windows.append(window)
    return windows


def archive_report(settings, primary, layout: Layout, key_for=None) -> dict:
    from orchestrator_data.recovery import keying

    key_for = key_for or keying.key_lookup(settings)
    current = archive_status(primary, layout, settings.wal_archive_slot).as_dict()
    backups = list_base_backups(layout)
    gaps = gap_windows(layout, key_for)
    lag = current["lag_seconds"]
    problems = []
    if lag is None or lag > settings.rpo_target_seconds:
        problems.append(f"archive lag {lag if lag is not None else 'unknown'} s is beyond the RPO target "
                        f"{settings.rpo_target_seconds:.0f} s")
    if current["slot_wal_status"] in ("lost", "unreserved"):
        problems.append(f"slot {settings.wal_archive_slot} is {current['slot_wal_status']}: WAL is being or was lost")
    if (current["slot_retained_bytes"] or 0) > settings.wal_slot_alert_bytes:
        problems.append(f"slot retains {current['slot_retained_bytes']} bytes (alert above {settings.wal_slot_alert_bytes})")
    if gaps:
        problems.append(f"{len(gaps)} gap(s) in the archive")
    if not backups:
        problems.append("no base backup")
    return {
        **current, "mode": settings.wal_archive_mode, "rpo_target_seconds": settings.rpo_target_seconds,
        "base_backups": len(backups),
        "window_start": backups[0].finished_at.isoformat() if backups else None,
        "window_days_target": settings.recovery_window_days,
        "gaps": gaps, "problems": problems, "healthy": not problems,
        "checked_at": datetime.now(UTC).isoformat(),
    }


def describe(report: dict) -> list[str]:
    lines = [
        f"archiver {'running' if report['archiver_running'] else 'not running'} ({report['mode']}), "
        f"{'streaming' if report['streaming'] else 'not streaming'}{', synchronous' if report['sync'] else ''}",
        f"archived to {report['archived_lsn'] or '-'} (server at {report['current_lsn']}), lag {report['lag_bytes']} bytes, "
        f"{report['lag_seconds'] if report['lag_seconds'] is not None else '?'} s (RPO target {report['rpo_target_seconds']:.0f} s)",
        f"slot {report['slot']}: {report['slot_wal_status'] or 'missing'}, retains {report['slot_retained_bytes']} bytes",
        f"{report['base_backups']} base backup(s); restorable from {report['window_start'] or '-'}",
    ]
    for gap in report["gaps"]:
        lines.append(f"GAP {gap['first_missing']}..{gap['last_missing']}: nothing from "
                     f"{gap['unrestorable_from'] or gap['unrestorable_from_lsn']} (LSN {gap['unrestorable_from_lsn']}) until "
                     f"{gap['unrestorable_until'] or 'a new base backup'} can be restored")
    lines += [f"problem: {p}" for p in report["problems"]]
    return lines


__all__ = ["archive_report", "describe", "gap_windows", "segment_name"]
