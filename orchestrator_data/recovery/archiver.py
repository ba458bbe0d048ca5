"""The WAL archiver: supervises `pg_receivewal -D RECOVERY_DIR/wal --slot NAME`, restarts it with
backoff when it exits, and seals the segments it completes (wal.seal).

The slot is what makes a stop harmless: while the archiver is down the server keeps the WAL the
slot has not confirmed (bounded by max_slot_wal_keep_size), and pg_receivewal resumes from the
.partial segment it left, or from the slot's restart_lsn. In sync mode pg_receivewal flushes and
confirms every write (--synchronous) and the server lists the slot's name, which is also the
archiver's application_name, in synchronous_standby_names: a commit returns once its WAL is in
the archive, and commits wait while the archiver is down."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator_data.backups import _pg
from orchestrator_data.recovery import wal
from orchestrator_data.recovery.errors import RecoveryError, RecoveryRefused
from orchestrator_data.recovery.layout import Layout
from orchestrator_data.recovery.server import Primary, server_facts, tool
from orchestrator_data.stack.common import write_atomically

MODES = ("off", "async", "sync")
MAX_BACKOFF_S = 30.0


@dataclass
class ArchiverConfig:
    primary: Primary
    layout: Layout
    slot: str
    mode: str                      # async | sync
    key: bytes | None = None       # seals completed segments when set
    status_interval_s: int = 1     # how often pg_receivewal reports its position (the lag the server sees)
    seal_interval_s: float = 1.0


def ensure_slot(primary: Primary, slot: str) -> bool:
    """Create the physical slot, reserving WAL from now, unless it exists. True when created."""
    with primary.connect() as conn:
        row = conn.execute("SELECT slot_type FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
        if row:
            if row[0] != "physical":
                raise RecoveryError(f"replication slot {slot} exists but is {row[0]}, not physical")
            return False
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
        return True


def sync_standby_problem(primary: Primary, slot: str) -> str | None:
    """Sync mode needs the server to wait for the archiver: its synchronous_standby_names must name the
    slot. The local stack sets it once the archiver streams (before, the server's own start would wait)."""
    with primary.connect() as conn:
        names = conn.execute("SHOW synchronous_standby_names").fetchone()[0]
    if slot not in names.replace('"', " ").replace(",", " ").split():
        return (f"sync mode, but the server's synchronous_standby_names is {names!r}: commits do not wait for the "
                f"archive until it names '\"{slot}\"'")
    return None


def prepare(config: ArchiverConfig) -> dict:
    """Check the server and the archive belong together, create the slot, record archive.json."""
    if config.mode not in ("async", "sync"):
        raise RecoveryRefused(f"WAL_ARCHIVE_MODE is {config.mode!r}: the archiver runs in async or sync mode")
    facts = server_facts(config.primary)
    layout = config.layout
    layout.ensure()
    info = layout.read_archive_info()
    if info and info.get("system_identifier") != facts.system_identifier:
        raise RecoveryError(
            f"{layout.root} archives another cluster (system identifier {info.get('system_identifier')}, the server "
            f"is {facts.system_identifier}); point RECOVERY_DIR elsewhere")
    if not info:
        info = {"system_identifier": facts.system_identifier, "segment_size": facts.segment_size,
                "server_version": facts.server_version, "slot": config.slot}
        write_atomically(layout.archive_info, json.dumps(info, indent=2), mode=0o600)
    ensure_slot(config.primary, config.slot)
    return info


def receiver_command(config: ArchiverConfig) -> list[str]:
    args = [tool("pg_receivewal"), "-d", config.primary.connstr(), "-D", str(config.layout.wal),
            "--slot", config.slot, "--no-loop", "-w", "-s", str(config.status_interval_s), "-v"]
    if config.mode == "sync":
        args.append("--synchronous")
    return args


class Archiver:
    """Runs pg_receivewal until `stop()` is called; restarts it with backoff when it exits."""

    def __init__(self, config: ArchiverConfig, log: Callable[[str], None] = print):
        self.config = config
        self.log = log
        self._stop = threading.Event()
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    def stop(self) -> None:
        self._stop.set()

    def _start_receiver(self) -> subprocess.Popen:
        log_path = self.config.layout.root / "pg_receivewal.log"
        handle = open(log_path, "ab")
        try:
            return subprocess.Popen(receiver_command(self.config), stdout=handle, stderr=subprocess.STDOUT,
                                    env=self.config.primary.env(application_name=self.config.slot),
                                    preexec_fn=_pg.dies_with_parent())
        finally:
            handle.close()

    def _seal(self, segment_size: int) -> None:
        try:
            for name in wal.seal(self.config.layout.wal, segment_size, self.config.key):
                self.log(f"sealed {name}")
        except OSError as exc:
            self.log(f"sealing failed: {exc}")

    def run(self) -> None:
        info = prepare(self.config)
        segment_size = int(info["segment_size"])
        backoff = 1.0
        self.log(f"archiving WAL through slot {self.config.slot} ({self.config.mode}) into {self.config.layout.wal}")
        if self.config.mode == "sync" and (problem := sync_standby_problem(self.config.primary, self.config.slot)):
            self.log(problem)
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                self.process = self._start_receiver()
                while self.process.poll() is None and not self._stop.is_set():
                    self._seal(segment_size)
                    self._stop.wait(self.config.seal_interval_s)
                if self._stop.is_set():
                    break
                code = self.process.returncode
                self._seal(segment_size)
                if time.monotonic() - started > 60:
                    backoff = 1.0  # it ran fine for a while: the next failure starts the backoff afresh
                self.restarts += 1
                self.log(f"pg_receivewal exited with {code}; restarting in {backoff:.0f} s")
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                try:
                    ensure_slot(self.config.primary, self.config.slot)
                except Exception as exc:  # noqa: BLE001 - the server may still be down: keep trying
                    self.log(f"server not reachable yet: {' '.join(str(exc).split())[:200]}")
        finally:
            self._terminate_receiver()
            self._seal(segment_size)
            self.log("archiver stopped")

    def _terminate_receiver(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()  # pg_receivewal flushes what it received and exits on SIGTERM
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def config_from_settings(settings, url: str, key: bytes | None) -> ArchiverConfig:
    return ArchiverConfig(primary=Primary(url), layout=Layout.from_settings(settings), slot=settings.wal_archive_slot,
                          mode=settings.wal_archive_mode, key=key)


def pid_file(layout: Layout) -> Path:
    return layout.root / "archiver.pid"
