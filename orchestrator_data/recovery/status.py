"""How far the WAL archive is behind the server: last archived LSN and time, lag in bytes and
seconds, what the slot holds back, whether the archiver is running."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from orchestrator_data.recovery.layout import Layout, int_to_lsn, lsn_to_int
from orchestrator_data.recovery.server import Primary
from orchestrator_data.stack.common import pid_alive, read_pid


@dataclass
class ArchiveStatus:
    slot: str
    archiver_running: bool          # the archiver process of this RECOVERY_DIR (pid file) lives
    streaming: bool                 # the server sees the archiver connected
    current_lsn: str | None
    archived_lsn: str | None        # WAL written to the archive (the .partial included)
    flushed_lsn: str | None         # WAL fsynced in the archive
    last_archived_at: str | None    # when the archive last received WAL
    lag_bytes: int | None
    lag_seconds: float | None
    slot_retained_bytes: int | None
    slot_wal_status: str | None     # reserved | extended | unreserved | lost
    sync: bool                      # the server waits for the archiver at each commit

    def as_dict(self) -> dict:
        return asdict(self)


def archiver_pid(layout: Layout) -> int | None:
    pid = read_pid(layout.root / "archiver.pid")
    return pid if pid_alive(pid) else None


def last_archived_at(layout: Layout) -> datetime | None:
    newest = None
    if layout.wal.is_dir():
        for path in layout.wal.iterdir():
            if path.name.startswith("."):
                continue
            mtime = path.stat().st_mtime
            newest = mtime if newest is None or mtime > newest else newest
    return datetime.fromtimestamp(newest, UTC) if newest is not None else None


def archived_position(primary: Primary, slot: str) -> int | None:
    """The newest LSN the archive holds, as the server knows it (the archiver's write position while it
    streams, else the slot's restart_lsn)."""
    with primary.connect() as conn:
        row = conn.execute(
            "SELECT (SELECT max(write_lsn)::text FROM pg_stat_replication WHERE application_name = %s), "
            "       (SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s)", (slot, slot)).fetchone()
    values = [lsn_to_int(v) for v in row if v]
    return max(values) if values else None


def wait_archived(primary: Primary, slot: str, lsn: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        position = archived_position(primary, slot)
        if position is not None and position >= lsn:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def archive_status(primary: Primary, layout: Layout, slot: str) -> ArchiveStatus:
    with primary.connect() as conn:
        current = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        replication = conn.execute(
            "SELECT write_lsn::text, flush_lsn::text, extract(epoch FROM write_lag), sync_state "
            "FROM pg_stat_replication WHERE application_name = %s ORDER BY backend_start DESC LIMIT 1",
            (slot,)).fetchone()
        slot_row = conn.execute(
            "SELECT restart_lsn::text, wal_status, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
            "FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
    current_lsn = lsn_to_int(str(current))
    archived = flushed = None
    lag_seconds = None
    if replication:
        archived = lsn_to_int(replication[0]) if replication[0] else None
        flushed = lsn_to_int(replication[1]) if replication[1] else None
    if slot_row and slot_row[0]:
        restart = lsn_to_int(slot_row[0])
        archived = max(archived or 0, restart)
        flushed = max(flushed or 0, restart)
    lag_bytes = current_lsn - archived if archived is not None else None
    last_at = last_archived_at(layout)
    if lag_bytes == 0:
        lag_seconds = 0.0
    elif replication and replication[2] is not None:
        lag_seconds = float(replication[2])
    elif last_at is not None:
        lag_seconds = max(0.0, (datetime.now(UTC) - last_at).total_seconds())
    return ArchiveStatus(
        slot=slot, archiver_running=archiver_pid(layout) is not None, streaming=replication is not None,
        current_lsn=int_to_lsn(current_lsn), archived_lsn=int_to_lsn(archived) if archived is not None else None,
        flushed_lsn=int_to_lsn(flushed) if flushed is not None else None,
        last_archived_at=last_at.isoformat() if last_at else None, lag_bytes=lag_bytes, lag_seconds=lag_seconds,
        slot_retained_bytes=int(slot_row[2]) if slot_row and slot_row[2] is not None else None,
        slot_wal_status=slot_row[1] if slot_row else None,
        sync=bool(replication and replication[3] in ("sync", "quorum")))
