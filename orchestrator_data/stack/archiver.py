"""The WAL archiver as a service of the local stack: `orchestrator-data recovery archiver` in a process
of its own, started after PostgreSQL when WAL_ARCHIVE_MODE is not off, with a pid file and a log."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg

from orchestrator_data.stack.common import PidFileServer, ServiceStatus, pid_alive

MARKER = "recovery archiver"
# the server keeps at most this much WAL for a stopped archiver (then the slot is lost and the archive has a
# gap); the alert (WAL_SLOT_ALERT_BYTES) fires at a quarter of it
KEEP_FACTOR = 4


def recovery_conf(mode: str, slot: str, alert_bytes: int, *, sync_now: bool) -> str:
    """The local server's settings for the archive: WAL summaries (incremental base backups), a bound on
    what the slot may hold, and, in sync mode once the archiver streams, the archiver as synchronous standby."""
    keep_mb = max(64, alert_bytes * KEEP_FACTOR // (1 << 20))
    names = f'"{slot}"' if mode == "sync" and sync_now else ""
    return ("# written by `orchestrator-data stack start` (WAL_ARCHIVE_MODE); edits are overwritten\n"
            "summarize_wal = on\n"
            f"max_slot_wal_keep_size = '{keep_mb}MB'\n"
            f"synchronous_standby_names = '{names}'\n")


class ArchiverService(PidFileServer):
    name = "archiver"

    def __init__(self, root: Path, settings, environment: dict[str, str]):
        self.root = root / "archiver"
        self.pid_file = self.root / "archiver.pid"
        self.log_file = self.root / "archiver.log"
        self.settings = settings
        self.environment = environment

    def cmdline_marker(self) -> str:
        return MARKER

    def start(self, postgres_url: str, timeout_s: float = 30.0) -> ServiceStatus:
        if self.is_running():
            return self.status()
        self.remove_stale_pid_file()
        self.root.mkdir(parents=True, exist_ok=True)
        process = self.spawn([sys.executable, "-m", "orchestrator_data.cli.main", *MARKER.split()], self.log_file,
                             env=self.environment)
        self.await_ready(process, lambda: self._streaming(postgres_url), timeout_s, 0.2,
                         "the WAL archiver did not start streaming", self.log_file)
        return self.status()

    def _streaming(self, url: str) -> bool:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                return bool(conn.execute("SELECT count(*) FROM pg_stat_replication WHERE application_name = %s",
                                         (self.settings.wal_archive_slot,)).fetchone()[0])
        except psycopg.Error:
            return False

    def status(self) -> ServiceStatus:
        pid = self._pid()
        status = ServiceStatus(name=self.name, running=pid is not None and pid_alive(pid), pid=pid,
                               log_file=str(self.log_file), data_dir=str(self.settings.recovery_root))
        status.detail["mode"] = self.settings.wal_archive_mode
        return status
