"""Point-in-time recovery, in one run on clusters of its own (docs/recovery.md, issue 20):

- RPO under load: a writer commits numbered rows (one per transaction, as fast as it can, at least
  200/s), the primary is killed -9, the archive is restored to its end; acknowledged commits missing
  are counted (goal 0 in sync mode) and the async loss given in seconds.
- RTO: `recovery restore --latest` of a pgbench database (`--scale`, 70 is about 1 GB) plus the WAL of
  `--wal-mb` of updates, against the same by hand: a plain pg_basebackup copy of the same moment and a
  plain recovery from a plain WAL directory (goal: ratio at most 1.1).
- Incremental base backup after 5 % of the rows changed, against a full one (size and time).

    .venv/bin/python -m bench.recovery [--scale 10] [--wal-mb 64] [--seconds 5] [--repeat 1] [--rto-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from orchestrator_data.backups.crypto import decrypt_file

from orchestrator_data.recovery import base_backups, restore, wal
from orchestrator_data.recovery.archiver import Archiver, ArchiverConfig
from orchestrator_data.recovery.cluster import ScratchCluster
from orchestrator_data.recovery.layout import Layout
from orchestrator_data.recovery.server import Primary, chown_tree, tool
from orchestrator_data.recovery.status import wait_archived
from orchestrator_data.recovery.targets import Target
from orchestrator_data.stack.postgres import SYSTEM_USER, _run_as

SLOT = "bench_archiver"


def _archiving(root: Path, name: str, mode: str, key: bytes | None, **settings):
    extra = {"synchronous_standby_names": f'"{SLOT}"'} if mode == "sync" else {}
    cluster = ScratchCluster.create(root / name, settings={**extra, **settings})
    cluster.start()
    layout = Layout(root / f"{name}-recovery")
    archiver = Archiver(ArchiverConfig(Primary(cluster.url()), layout, SLOT, mode, key=key), log=lambda _: None)
    thread = threading.Thread(target=archiver.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        while not conn.execute("SELECT count(*) FROM pg_stat_replication WHERE application_name = %s",
                               (SLOT,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the archiver did not start"
            time.sleep(0.1)
    return cluster, layout, archiver, thread


def _current_lsn(cluster) -> int:
    from orchestrator_data.recovery.layout import lsn_to_int

    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        return lsn_to_int(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])


def rpo(root: Path, mode: str, seconds: float) -> dict:
    cluster, layout, archiver, thread = _archiving(root, f"rpo-{mode}", mode, os.urandom(32))
    key = archiver.config.key
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE numbered (n bigint PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
    base_backups.take_base_backup(Primary(cluster.url()), layout, slot=SLOT, key=key)
    acknowledged: list[tuple[int, float]] = []

    def write() -> None:
        try:
            with psycopg.connect(cluster.url(), autocommit=True) as conn:
                n = 0
                while True:
                    n += 1
                    conn.execute("INSERT INTO numbered (n) VALUES (%s)", (n,))
                    acknowledged.append((n, time.time()))
        except psycopg.Error:
            return  # the primary is gone

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(seconds)
    postmaster = int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])
    os.kill(postmaster, signal.SIGKILL)
    writer.join(30)
    time.sleep(1.0)  # what the archiver received before the kill is on its way to disk
    archiver.stop()
    thread.join(30)
    into = root / f"rpo-{mode}-restored"
    result = restore.restore(layout, Target("latest"), into, key_for=lambda _: key)
    with psycopg.connect(host=str(into), port=result.port, user="postgres", dbname="postgres") as conn:
        recovered = {row[0] for row in conn.execute("SELECT n FROM numbered")}
    restore.stop_cluster(into)
    missing = [(n, at) for n, at in acknowledged if n not in recovered]
    rate = len(acknowledged) / seconds
    loss_s = (acknowledged[-1][1] - missing[0][1]) if missing else 0.0
    _run_as([tool("pg_ctl"), "-D", str(cluster.data_dir), "-m", "immediate", "stop"], timeout=60)
    return {"mode": mode, "commits_per_s": round(rate), "acknowledged": len(acknowledged),
            "missing": len(missing), "loss_s": round(loss_s, 3)}


def _pgbench(cluster, *args: str) -> None:
    subprocess.run([tool("pgbench"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", *args, "postgres"],
                   check=True, capture_output=True)


def rto_and_incremental(root: Path, scale: int, wal_mb: int, repeat: int = 1) -> dict:
    key = os.urandom(32)
    cluster, layout, archiver, thread = _archiving(root, "rto", "async", key)
    _pgbench(cluster, "-i", "-q", "-s", str(scale))
    primary = Primary(cluster.url())
    started = time.monotonic()
    full = base_backups.take_base_backup(primary, layout, slot=SLOT, key=key)
    full_s = time.monotonic() - started
    # 5 % of the accounts changed (a contiguous range: block-level incrementals count changed blocks, and
    # every 20th row would touch every block), then an incremental backup against a full one
    rows = scale * 100_000
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= %s", (rows // 20,))
    started = time.monotonic()
    incremental = base_backups.take_base_backup(primary, layout, slot=SLOT, key=key, incremental=True)
    incremental_s = time.monotonic() - started
    # by hand, from the same moment: a plain copy (pg_basebackup -X none), later a plain recovery
    hand_backup = root / "by-hand-backup"
    subprocess.run([tool("pg_basebackup"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
                    "-D", str(hand_backup), "-X", "none", "-c", "fast"], check=True, capture_output=True)
    # WAL to replay: updates until about wal_mb of WAL was written
    target = _current_lsn(cluster) + wal_mb * (1 << 20)
    while _current_lsn(cluster) < target:
        _pgbench(cluster, "-n", "-t", "2000", "-c", "2", "-N")
    assert wait_archived(primary, SLOT, _current_lsn(cluster), 120)
    archiver.stop()
    thread.join(30)
    plain_wal = root / "by-hand-wal"
    plain_wal.mkdir()
    for item in wal.list_archive(layout.wal, 16 << 20):  # the archive decrypted: a plain WAL directory
        wal.materialize(item, plain_wal / item.name, lambda _: key)
    unencrypted = _decrypted_copy(layout, root / "unencrypted-recovery", key)
    # by hand, ours encrypted, ours unencrypted, in turn `repeat` times: the machine's load changes within
    # a run, so each figure is the (lower) median of its repetitions, measured between the others'
    by_hand_runs, ours_runs, unencrypted_runs, copies, redo_by_hand = [], [], [], [], []
    for _ in range(repeat):
        by_hand_runs.append(_by_hand(root, hand_backup, plain_wal, copies))
        redo_by_hand.append(_redo_done(root / "by-hand.log"))
        started = time.monotonic()
        result = restore.restore(layout, Target("latest"), root / "ours", key_for=lambda _: key)
        ours_runs.append((time.monotonic() - started, result))
        restore.stop_cluster(root / "ours")
        shutil.rmtree(root / "ours")
        started = time.monotonic()
        plain_result = restore.restore(unencrypted, Target("latest"), root / "ours-unencrypted")
        unencrypted_runs.append((time.monotonic() - started, plain_result))
        restore.stop_cluster(root / "ours-unencrypted")
        shutil.rmtree(root / "ours-unencrypted")
    _run_as([tool("pg_ctl"), "-D", str(cluster.data_dir), "-m", "immediate", "stop"], timeout=60)
    by_hand_s = sorted(by_hand_runs)[(repeat - 1) // 2]   # the lower median, as _median
    ours_s, result = _median(ours_runs)
    unencrypted_s, plain_result = _median(unencrypted_runs)
    return {"scale": scale, "accounts": rows, "full_bytes": full.size_bytes, "full_s": round(full_s, 2),
            "incremental_bytes": incremental.size_bytes, "incremental_s": round(incremental_s, 2),
            "size_ratio": round(incremental.size_bytes / full.size_bytes, 3),
            "restore_s": round(ours_s, 2), "by_hand_s": round(by_hand_s, 2),
            "rto_ratio": round(ours_s / by_hand_s, 2), "wal_segments": result.wal_segments,
            "timings": result.extra.get("timings"), "unencrypted_s": round(unencrypted_s, 2),
            "unencrypted_ratio": round(unencrypted_s / by_hand_s, 2),
            "unencrypted_timings": plain_result.extra.get("timings"), "repeat": repeat,
            "runs": {"by_hand": [round(x, 2) for x in by_hand_runs], "by_hand_copy": [round(x, 2) for x in copies],
                     "ours": [round(x[0], 2) for x in ours_runs], "redo_done_by_hand": redo_by_hand,
                     "redo_done_ours": [x[1].recovered_to_lsn for x in ours_runs + unencrypted_runs],
                     "unencrypted": [round(x[0], 2) for x in unencrypted_runs]},
            "base_bytes": sum(f.stat().st_size for f in hand_backup.rglob("*") if f.is_file())}


def _by_hand(root: Path, hand_backup: Path, plain_wal: Path, copies: list[float]) -> float:
    """pg_basebackup's plain copy of the moment, copied into place, and a plain recovery from a plain WAL
    directory (restore_command cp), until the server is in production. `copies` gets the copy's seconds."""
    plain = root / "by-hand"
    started = time.monotonic()
    shutil.copytree(hand_backup, plain)
    copies.append(time.monotonic() - started)
    (plain / "recovery.signal").touch()
    with open(plain / "postgresql.auto.conf", "a") as conf:
        conf.write(f"restore_command = 'cp {plain_wal}/%f %p'\nunix_socket_directories = '{plain}'\n"
                   "listen_addresses = ''\n")
    chown_tree(plain, SYSTEM_USER)
    chown_tree(plain_wal, SYSTEM_USER)
    # the log inside the copy: the server's OS user cannot write into the bench's root (as root, before this
    # the start failed on its log file unseen, and the copied pg_control's "in production" ended the wait)
    log = plain / "by-hand.log"
    started_server = _run_as([tool("pg_ctl"), "-D", str(plain), "-l", str(log), "-w", "-t", "900",
                              "-o", "-p 5999", "start"], timeout=960)
    if started_server.returncode != 0:
        raise RuntimeError(f"the by-hand restore did not start: {started_server.stdout[-300:]} {started_server.stderr[-300:]}")
    while "in production" not in _run_as([tool("pg_controldata"), "-D", str(plain)], timeout=30).stdout:
        time.sleep(0.1)
    seconds = time.monotonic() - started
    _run_as([tool("pg_ctl"), "-D", str(plain), "-m", "fast", "stop"], timeout=120)
    shutil.copyfile(log, root / "by-hand.log")
    shutil.rmtree(plain)
    return seconds


def _redo_done(log: Path) -> str | None:
    """Where the by-hand recovery's redo ended (its log), to compare with ours: the same moment."""
    found = re.findall(r"redo done at ([0-9A-F]+/[0-9A-F]+)", log.read_text(errors="replace")) if log.exists() else []
    return found[-1] if found else None


def _median(runs: list[tuple[float, restore.RestoreResult]]) -> tuple[float, restore.RestoreResult]:
    """The lower median (of two runs, the faster) and its result."""
    ordered = sorted(runs, key=lambda run: run[0])
    return ordered[(len(ordered) - 1) // 2]


def _decrypted_copy(layout: Layout, root: Path, key: bytes) -> Layout:
    """The archive and base backups decrypted into a layout of their own, as an archive kept without a key."""
    import hashlib
    import json

    copy = Layout(root)
    copy.ensure()
    shutil.copy(layout.archive_info, copy.archive_info)
    for item in wal.list_archive(layout.wal, 16 << 20):
        wal.materialize(item, copy.wal / (item.name + (".partial" if item.partial else "")), lambda _: key)
    for backup in base_backups.list_base_backups(layout):
        target = copy.base / backup.id
        target.mkdir()
        for stored, name in ((backup.data_file, base_backups.DATA), (backup.pg_manifest_file, base_backups.PG_MANIFEST)):
            decrypt_file(stored, target / name, key)
        data = (target / base_backups.DATA).read_bytes()
        manifest = {**backup.manifest, "key_id": None, "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (target / base_backups.MANIFEST).write_text(json.dumps(manifest))
    return copy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale of the RTO database (70: about 1 GB)")
    parser.add_argument("--wal-mb", type=int, default=64, help="WAL to replay after the base backup")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the RPO writer runs")
    parser.add_argument("--repeat", type=int, default=1, help="RTO: restores of each kind, in turn (medians)")
    parser.add_argument("--rto-only", action="store_true", help="skip the RPO runs")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    os.chmod(root, 0o755)
    try:
        for mode in () if args.rto_only else ("sync", "async"):
            figures = rpo(root, mode, args.seconds)
            print(f"RPO {mode:>5}: {figures['commits_per_s']} commits/s, {figures['acknowledged']} acknowledged, "
                  f"{figures['missing']} missing after a kill -9 and a restore to the archive's end "
                  f"(loss {figures['loss_s']} s){'  goal: 0 missing' if mode == 'sync' else ''}")
        figures = rto_and_incremental(root, args.scale, args.wal_mb, args.repeat)
        print(f"RTO: restore of scale {figures['scale']} ({figures['base_bytes'] / 1e6:.0f} MB) + {args.wal_mb} MB WAL "
              f"{figures['restore_s']} s, by hand {figures['by_hand_s']} s: ratio {figures['rto_ratio']} (goal <= 1.1); "
              f"steps (s from start) {figures['timings']}")
        print(f"RTO unencrypted: {figures['unencrypted_s']} s, ratio {figures['unencrypted_ratio']}; "
              f"steps {figures['unencrypted_timings']}")
        print(f"RTO runs (s, in turn): {figures['runs']}")
        print(f"incremental after 5 % changed: {figures['incremental_bytes']} bytes in {figures['incremental_s']} s "
              f"against full {figures['full_bytes']} bytes in {figures['full_s']} s (size ratio {figures['size_ratio']})")
    finally:
        for data in root.glob("*"):
            if (data / "postmaster.pid").exists():
                _run_as([tool("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], timeout=60)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
