"""Restore to a target into a new cluster: choose the base backup chain, rebuild it into DIR, stage
the WAL it needs, start it in archive recovery with the target and `recovery_target_action =
promote`, wait for the end of recovery and report what it recovered to. Never touches the running
cluster (an in-place restore moves the stopped one aside, never deletes it).

Every refusal (a bad or out-of-window target, a busy directory or port) happens before DIR is
written; a restore that fails after that stops its server and removes what it wrote."""

from __future__ import annotations

import re
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from orchestrator_data.recovery import base_backups, wal
from orchestrator_data.recovery.base_backups import BaseBackup
from orchestrator_data.recovery.errors import RecoveryError, RecoveryRefused
from orchestrator_data.recovery.layout import Layout, int_to_lsn, segment_name
from orchestrator_data.recovery.server import chown_tree, tool
from orchestrator_data.recovery.status import last_archived_at
from orchestrator_data.recovery.targets import Target
from orchestrator_data.stack.common import free_port, pid_alive, port_in_use, tail
from orchestrator_data.stack.postgres import SYSTEM_USER, _prepare_permissions, _run_as

KeyFor = Callable[[str], bytes]
STAGED_WAL = "restore_wal"   # inside the new data directory, removed once recovery has ended
LOG = "restore.log"


@dataclass
class Window:
    """What can be restored from the archive: from the oldest base backup's consistency point to the end
    of gapless WAL after the chosen one."""

    start_time: datetime
    start_lsn: int
    end_time: datetime | None
    end_lsn: int | None

    def describe(self) -> str:
        end = (f"{self.end_time.isoformat(timespec='seconds')} (LSN {int_to_lsn(self.end_lsn)})"
               if self.end_time and self.end_lsn is not None else "the archive's end")
        return f"{self.start_time.isoformat(timespec='seconds')} (LSN {int_to_lsn(self.start_lsn)}) to {end}"


@dataclass
class Plan:
    backup: BaseBackup
    target: Target
    settings: dict[str, str]   # the recovery_target_* settings (none: recover to the archive's end)
    window: Window | None      # None for --latest: its WAL is not read before the start
    staged: wal.Staged
    index: wal.WalIndex | None
    note: str | None = None
    timings: dict[str, float] = field(default_factory=dict)   # seconds from the start, by step (RestoreResult.extra)


@dataclass
class RestoreResult:
    into: str
    port: int
    url: str
    target: str
    base_backups: list[str]
    recovered_to_time: str | None
    recovered_to_lsn: str | None
    stopped: str | None
    timeline: int | None
    seconds: float
    wal_segments: int
    note: str | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


# -- checks before anything is written -------------------------------------------------------------
def check_destination(into: Path) -> None:
    if into.exists() and not into.is_dir():
        raise RecoveryRefused(f"--into {into} exists and is not a directory")
    if into.is_dir() and any(into.iterdir()):
        raise RecoveryRefused(f"--into {into} exists and is not empty: give a new or empty directory")


def check_port(port: int) -> None:
    if port_in_use(port):
        raise RecoveryRefused(f"--port {port} is in use on 127.0.0.1: choose a free port or leave --port out")


def _window(backups: list[BaseBackup], index: wal.WalIndex, layout: Layout, staged: wal.Staged) -> Window:
    oldest = backups[0]
    last = index.last_commit()
    end_time = last.time if last else None
    if not staged.missing:
        # no gap up to the newest file: the archive holds every commit up to its last write
        written = last_archived_at(layout)
        if written is not None and (end_time is None or written > end_time):
            end_time = written
    return Window(oldest.finished_at, oldest.end_lsn, end_time, index.end_lsn)


def _gap_note(staged: wal.Staged, segment_size: int, timeline: int) -> str:
    if not staged.missing:
        return ""
    first = staged.missing[0]
    return (f"; WAL segment {segment_name(timeline, first, segment_size)} is missing from the archive, so nothing "
            f"after LSN {int_to_lsn(first * segment_size)} can be restored from this base backup")


def _backups_of(layout: Layout, info: dict) -> list[BaseBackup]:
    return [b for b in base_backups.list_base_backups(layout) if b.system_identifier == info["system_identifier"]]


def _candidates(backups: list[BaseBackup], target: Target) -> list[BaseBackup]:
    """The base backups a time, LSN or latest target may start from (plan() takes the newest); for an xid
    or a name all of them, narrowed once the WAL was read."""
    if target.kind == "time":
        return [b for b in backups if b.finished_at <= target.time]
    if target.kind == "lsn":
        return [b for b in backups if b.end_lsn <= target.lsn]
    return backups


def likely_backup(layout: Layout, target: Target) -> BaseBackup | None:
    """The base backup plan() will choose, when it is known before the WAL is read (a time, an LSN, the
    latest): its chain can be rebuilt while the WAL is staged and read."""
    if target.kind not in ("time", "lsn", "latest"):
        return None
    info = layout.read_archive_info()
    chosen = _candidates(_backups_of(layout, info), target) if info else []
    return chosen[-1] if chosen else None


class _Rebuild:
    """restore_chain in a thread, into the scratch directory (never DIR): overlaps the base backup's
    decryption and unpacking with the WAL's staging and pg_waldump. Nothing it writes is used unless
    plan() then chose the same backup and the rebuild (with every check) succeeded."""

    def __init__(self, layout: Layout, backup: BaseBackup, key_for: KeyFor | None, scratch: Path,
                 mark: Callable[[str], None] | None = None):
        import threading

        self.backup, self.destination = backup, scratch / "data"
        self.used: list[str] | None = None
        self.failure: BaseException | None = None
        self.cancelled = threading.Event()

        def work() -> None:
            try:
                self.used = base_backups.restore_chain(layout, backup, self.destination, key_for, scratch,
                                                       self.cancelled, mark)
            except BaseException as exc:  # noqa: BLE001 - handed to result()
                self.failure = exc

        self.thread = threading.Thread(target=work, name="restore-rebuild", daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join()

    def cancel(self) -> None:
        """Stop it at its next chunk (a refusal need not wait for a whole base backup to unpack)."""
        self.cancelled.set()
        self.thread.join()

    def result(self) -> list[str]:
        self.thread.join()
        if self.failure is not None:
            raise self.failure
        return self.used


def plan(layout: Layout, target: Target, key_for: KeyFor | None, scratch: Path) -> Plan:
    """Choose the base backup and the recovery settings for `target`, staging (decrypted) the WAL it
    needs into `scratch`, or refuse naming the window."""
    info = layout.read_archive_info()
    if not info:
        raise RecoveryRefused(f"no WAL archive in {layout.root} (start the archiver: WAL_ARCHIVE_MODE)")
    segment_size = int(info["segment_size"])
    backups = _backups_of(layout, info)
    if not backups:
        raise RecoveryRefused(f"no base backup in {layout.base}: take one with `orchestrator-data recovery base-backup`")
    chosen = _candidates(backups, target)
    first = chosen[-1] if target.kind in ("time", "lsn", "latest") and chosen else backups[0]
    staged = wal.stage(layout.wal, scratch, segment_size=segment_size, timeline=first.timeline,
                       from_lsn=first.start_lsn, key_for=key_for)
    if staged.last_segno is None:
        raise RecoveryRefused(f"the archive lacks WAL segment {segment_name(first.timeline, staged.first_segno, segment_size)}, "
                              f"the first base backup {first.id} needs")
    if target.kind == "latest":
        # nothing to refuse and nothing to look up: the server replays all the staged WAL. Reading it first
        # with pg_waldump (a pass over every byte) would only delay the start; the other targets need it
        return Plan(first, target, {}, None, staged, None)
    index = wal.scan(scratch, first.timeline, first.start_lsn, staged.last_segno, segment_size)
    window = _window(backups, index, layout, staged)
    outside = (f"{target.describe()} is outside the recovery window: {window.describe()}"
               f"{_gap_note(staged, segment_size, first.timeline)}")
    settings: dict[str, str] = {}
    note = None
    if target.kind == "time":
        if not chosen:
            raise RecoveryRefused(outside)
        if window.end_time is None or target.time > window.end_time:
            raise RecoveryRefused(outside + " (beyond the archive's end)")
        last = index.last_commit()
        if last is None or target.time >= last.time:
            note = "no commit after the target in the archive: recovered to the archive's end"
        else:
            settings = {"recovery_target_time": target.time.isoformat(), "recovery_target_inclusive": "on"}
        backup = chosen[-1]
    elif target.kind == "lsn":
        if not chosen or target.lsn > index.end_lsn:
            raise RecoveryRefused(outside)
        backup = chosen[-1]
        if target.lsn >= index.end_lsn:
            note = "the target is the archive's end"
        else:
            settings = {"recovery_target_lsn": int_to_lsn(target.lsn), "recovery_target_inclusive": "off"}
    elif target.kind == "xid":
        ended = index.transaction(target.xid)
        if ended is None or ended.lsn < backups[0].end_lsn:
            raise RecoveryRefused(f"transaction {target.xid} has no commit or abort inside the recovery window: "
                                  f"{window.describe()}")
        backup = [b for b in backups if b.end_lsn <= ended.lsn][-1]
        settings = {"recovery_target_xid": str(target.xid), "recovery_target_inclusive": "on"}
    elif target.kind == "name":
        point = index.restore_point(target.name)
        if point is None or point.lsn < backups[0].end_lsn:
            known = sorted({p.name for p in index.restore_points})
            raise RecoveryRefused(f"no restore point {target.name!r} inside the recovery window ({window.describe()})"
                                  + (f"; known: {', '.join(known[-10:])}" if known else ""))
        backup = [b for b in backups if b.end_lsn <= point.lsn][-1]
        if len([p for p in index.restore_points if p.name == target.name]) > 1:
            # PostgreSQL stops at the first point of a name; the newest is meant: stop just before its record
            settings = {"recovery_target_lsn": int_to_lsn(point.lsn), "recovery_target_inclusive": "off"}
            note = f"restore point {target.name!r} was made more than once: recovered to the newest"
        else:
            settings = {"recovery_target_name": target.name}
    else:
        backup = backups[-1]
    if settings:
        settings["recovery_target_action"] = "promote"
        settings["recovery_target_timeline"] = "current"
    if backup.start_lsn < first.start_lsn:  # xid/name chose a newer backup: the staged WAL already covers it
        raise RecoveryError("internal: the chosen base backup starts before the staged WAL")
    return Plan(backup, target, settings, window, staged, index, note)


# -- doing it --------------------------------------------------------------------------------------
def _recovered_to(log_text: str) -> dict:
    found: dict = {}
    for line in log_text.splitlines():
        if m := re.search(r"recovery stopping (.*)$", line):
            found["stopped"] = "recovery stopping " + m.group(1).strip()
        if m := re.search(r"redo done at ([0-9A-F]+/[0-9A-F]+)", line):
            found["lsn"] = m.group(1)
        if m := re.search(r"last completed transaction was at log time (.+)$", line):
            found["time"] = m.group(1).strip()
        if m := re.search(r"selected new timeline ID: (\d+)", line):
            found["timeline"] = int(m.group(1))
    return found


def _controldata_state(data_dir: Path) -> str | None:
    result = _run_as([tool("pg_controldata"), "-D", str(data_dir)], timeout=30)
    match = re.search(r"^Database cluster state:\s+(.+)$", result.stdout, re.M)
    return match.group(1).strip() if match else None


def _server_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _stop(data_dir: Path) -> None:
    if _server_pid(data_dir) is not None:
        _run_as([tool("pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "-t", "30", "stop"], timeout=60)


def stop_cluster(data_dir: Path, *, immediate: bool = False) -> None:
    """Stop a restored cluster: a fast shutdown (a shutdown checkpoint, the cluster stays usable), or
    `immediate` for a scratch cluster that is removed right after (no checkpoint to wait for)."""
    if _server_pid(data_dir) is not None:
        _run_as([tool("pg_ctl"), "-D", str(data_dir), "-m", "immediate" if immediate else "fast", "-w", "-t", "60",
                 "stop"], timeout=90)


def _append_conf(data_dir: Path, values: dict[str, str]) -> None:
    with open(data_dir / "postgresql.auto.conf", "a") as conf:
        conf.write("\n# orchestrator-data recovery restore\n")
        for key, value in values.items():
            conf.write(f"{key} = '{value}'\n")


def restore(layout: Layout, target: Target, into: Path, *, port: int | None = None, key_for: KeyFor | None = None,
            timeout_s: float = 900.0, username: str | None = "postgres", new_cluster: bool = True,
            scratch: bool = False) -> RestoreResult:
    """Restore into `into` (new or empty) and start it on `port` (a free one if None). `new_cluster=False`
    keeps the cluster's own port/listen settings (an in-place restore, started by the caller's options).
    `scratch`: a cluster that is read and dropped (the recovery check, tests) runs with fsync = off — no
    sync of the data directory before recovery, none at the end-of-recovery checkpoint; replay itself,
    the target and what is recovered are the same. Never for a cluster that is kept."""
    started = time.monotonic()
    into = into.expanduser().absolute()
    check_destination(into)
    if port is not None:
        check_port(port)
    scratch_dir = layout.scratch("restore")
    created = not into.exists()
    rebuild = None
    timings: dict[str, float] = {}

    def mark(step: str) -> None:
        timings[step] = round(time.monotonic() - started, 3)

    try:
        likely = likely_backup(layout, target)
        rebuild = _Rebuild(layout, likely, key_for, scratch_dir, mark) if likely is not None else None
        try:
            the_plan = plan(layout, target, key_for, scratch_dir / "wal")
            the_plan.timings = timings
            mark("wal_staged_and_read")
        except BaseException:
            if rebuild is not None:
                rebuild.cancel()  # and wait: before the scratch directory it writes into is removed
            raise
        if rebuild is not None and rebuild.backup.id != the_plan.backup.id:
            rebuild.cancel()
            shutil.rmtree(rebuild.destination, ignore_errors=True)
            rebuild = None
        port = port if port is not None else free_port()
        into.mkdir(parents=True, exist_ok=True)
        try:
            return _run(layout, the_plan, into, port, key_for, scratch_dir, started, timeout_s, username, new_cluster,
                        rebuild, scratch)
        except BaseException:
            _stop(into)
            if created:
                shutil.rmtree(into, ignore_errors=True)
            else:
                for child in into.iterdir():
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
            raise
    finally:
        if rebuild is not None:
            rebuild.join()
        shutil.rmtree(scratch_dir, ignore_errors=True)


def _run(layout: Layout, the_plan: Plan, into: Path, port: int, key_for, scratch: Path, started: float,
         timeout_s: float, username: str | None, new_cluster: bool, rebuild: _Rebuild | None,
         throwaway: bool) -> RestoreResult:
    # pg_combinebackup writes a new directory: rebuild beside, then move the content into `into`
    rebuilt = scratch / "data"
    if rebuild is not None:
        used = rebuild.result()
    else:
        used = base_backups.restore_chain(layout, the_plan.backup, rebuilt, key_for, scratch,
                                          mark=lambda step: the_plan.timings.__setitem__(
                                              step, round(time.monotonic() - started, 3)))
    the_plan.timings["base_rebuilt"] = round(time.monotonic() - started, 3)
    for child in rebuilt.iterdir():
        shutil.move(str(child), into / child.name)
    for name in ("backup_manifest",):
        (into / name).unlink(missing_ok=True)
    staged_dir = into / STAGED_WAL
    shutil.move(str(the_plan.staged.directory), staged_dir)
    segments = sum(1 for _ in staged_dir.iterdir())
    (into / "recovery.signal").touch()
    if new_cluster:
        _append_conf(into, {"port": str(port), "listen_addresses": "127.0.0.1", "unix_socket_directories": str(into),
                            "synchronous_standby_names": "", "archive_mode": "off"})
    (into / "log").mkdir(exist_ok=True)
    _prepare_permissions(into)
    chown_tree(into, SYSTEM_USER)
    # syncfs: one call per file system instead of an fsync per file before recovery starts
    # a hard link, not a copy: the staged segment is already this restore's own plaintext, in DIR (one file
    # system); the server keeps what it restored in pg_wal and never writes into it before it recycles it
    staged = shlex.quote(str(staged_dir))
    recovery = {"restore_command": f"ln {staged}/%f %p 2>/dev/null || cp {staged}/%f %p",
                "recovery_init_sync_method": "syncfs",
                **the_plan.settings}
    if throwaway:
        recovery["fsync"] = "off"  # on the command line only: never in the directory's own configuration
    options = " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in recovery.items())
    if not new_cluster:
        options += f" -p {port} -h 127.0.0.1 -k {shlex.quote(str(into))}"
    log_file = into / "log" / LOG
    the_plan.timings["server_starting"] = round(time.monotonic() - started, 3)
    result = _run_as([tool("pg_ctl"), "-D", str(into), "-l", str(log_file), "-w", "-t", str(int(timeout_s)),
                      "-o", options, "start"], timeout=timeout_s + 30)
    if result.returncode != 0:
        raise RecoveryError(f"the restored cluster did not start: {_fatal(log_file)}")
    deadline = time.monotonic() + timeout_s
    while _controldata_state(into) != "in production":
        pid = _server_pid(into)
        if pid is None or not pid_alive(pid):
            raise RecoveryError(f"recovery failed: {_fatal(log_file)}")
        if time.monotonic() > deadline:
            raise RecoveryError(f"recovery did not end within {timeout_s:.0f} s (see {log_file})")
        time.sleep(0.1)
    the_plan.timings["recovered"] = round(time.monotonic() - started, 3)
    shutil.rmtree(staged_dir, ignore_errors=True)
    found = _recovered_to(log_file.read_text(errors="replace"))
    from orchestrator_data.urls import make_url

    return RestoreResult(
        into=str(into), port=port, url=make_url("postgresql", "127.0.0.1", port, username=username, database="postgres"),
        target=the_plan.target.describe(), base_backups=used, recovered_to_time=found.get("time"),
        recovered_to_lsn=found.get("lsn"), stopped=found.get("stopped"), timeline=found.get("timeline"),
        seconds=round(time.monotonic() - started, 3), wal_segments=segments, note=the_plan.note,
        extra={"timings": the_plan.timings})


def _fatal(log_file: Path) -> str:
    lines = [line for line in tail(log_file, 60).splitlines() if "FATAL" in line or "PANIC" in line]
    return " ".join((lines[-1] if lines else tail(log_file, 1)).split())[:300]
