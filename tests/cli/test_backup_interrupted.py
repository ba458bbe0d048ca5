"""A `backup create` killed while pg_dump runs, as an operator or an orchestrator kills it: SIGTERM
stops pg_dump and removes the temp dir; after SIGKILL pg_dump dies with it (even one stalled on a
lock, which a closed pipe would never stop) and `prune` removes the temp dir it left (and never the
temp dir of a backup still running). A `restore-check` interrupted
while pg_restore runs drops its scratch database and its decrypted copy."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import time
from datetime import timedelta

import psutil
import psycopg
import pytest

from orchestrator_data.backups import create_backup, workdirs
from orchestrator_data.stack.common import pid_alive
from orchestrator_data.urls import database_name, libpq_url
from tests.cli.conftest import SCRIPT
from tests.orchestrator_data.backups.conftest import scratch_databases
from tests.databases import admin_url, fresh_database

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROWS = 1_000_000  # enough that pg_dump is still writing when the test signals the CLI


@pytest.fixture(scope="module")
def big_database(stack):
    """A database whose dump takes pg_dump a few seconds: generated rows of incompressible-ish text."""
    with fresh_database(stack, prefix="od_backup_kill") as url:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute("CREATE TABLE filler (id bigint PRIMARY KEY, payload text NOT NULL)")
            conn.execute("INSERT INTO filler SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) "
                         "FROM generate_series(1, %s) AS g", (ROWS,))
        yield url


def start_cli(url: str, backup_dir, *args: str, key: str = "") -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "DATABASE_URL": url, "BACKUP_DIR": str(backup_dir),
           "BACKUP_ENCRYPTION_KEY": key}
    return subprocess.Popen([str(SCRIPT), "backup", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def start_backup(url: str, backup_dir) -> subprocess.Popen:
    return start_cli(url, backup_dir, "create")


def running_tool(cli: subprocess.Popen, tool: str, started, timeout: float = 60) -> psutil.Process:
    """The CLI's `tool` child process, once `started()` says it is under way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert cli.poll() is None, f"the CLI ended before {tool} was seen running: {cli.communicate()}"
        children = [c for c in psutil.Process(cli.pid).children() if c.name() == tool]
        if children and started():
            return children[0]
        time.sleep(0.01)
    raise AssertionError(f"{tool} was not seen running")


def running_pg_dump(cli: subprocess.Popen, backup_dir) -> psutil.Process:
    """The CLI's pg_dump, once it has started writing the dump into the temp dir."""
    def writing() -> bool:
        dumps = list(backup_dir.glob(".tmp-*/dump.pgc"))
        return bool(dumps) and dumps[0].stat().st_size > 0

    return running_tool(cli, "pg_dump", writing)


def wait_until_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pid_alive(pid)


def server_sessions(stack, url: str, timeout: float = 10) -> list[str]:
    """The application names of the sessions still open on the database, once they are gone (or the timeout)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin_url(stack), autocommit=True) as conn:
        while True:
            names = [r[0] for r in conn.execute("SELECT application_name FROM pg_stat_activity WHERE datname = %s",
                                                (database_name(url),)).fetchall()]
            if not names or time.monotonic() > deadline:
                return names
            time.sleep(0.1)


def test_sigterm_stops_pg_dump_and_removes_the_temp_dir(big_database, tmp_path, stack):
    backup_dir = tmp_path / "backups"
    cli = start_backup(big_database, backup_dir)
    pg_dump = running_pg_dump(cli, backup_dir)
    # meanwhile, prune with no grace at all leaves the running backup's temp dir alone
    removed, kept = workdirs.remove_abandoned(backup_dir, timedelta(0))
    assert removed == [] and [w.in_use for w in kept] == [True]
    cli.send_signal(signal.SIGTERM)
    stdout, stderr = cli.communicate(timeout=30)
    assert cli.returncode == 128 + signal.SIGTERM, (stdout, stderr)
    assert stderr.strip().count("\n") == 0 and "backup create interrupted by SIGTERM" in stderr, stderr
    assert wait_until_gone(pg_dump.pid), "pg_dump outlived the interrupted backup"
    assert server_sessions(stack, big_database) == []  # neither pg_dump's session nor the snapshot's
    assert list(backup_dir.iterdir()) == []  # no temp dir, no backup


@contextlib.contextmanager
def table_locked(url: str):
    """An ACCESS EXCLUSIVE lock on the big table (as a long migration would hold): pg_dump waits for it
    without writing a byte, so a dead parent's closed pipe cannot kill it by SIGPIPE."""
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("LOCK TABLE filler IN ACCESS EXCLUSIVE MODE")
        yield
        conn.rollback()


def pg_dump_waits_for_a_lock(stack, url: str) -> bool:
    with psycopg.connect(admin_url(stack), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'pg_dump' "
                            "AND wait_event_type = 'Lock'", (database_name(url),)).fetchone()[0] > 0


def test_sigkill_takes_pg_dump_along_and_prune_removes_the_temp_dir(big_database, tmp_path, stack, cli):
    backup_dir = tmp_path / "backups"
    env = {"DATABASE_URL": big_database, "BACKUP_DIR": str(backup_dir)}
    with table_locked(big_database):
        backup = start_backup(big_database, backup_dir)
        pg_dump = running_tool(backup, "pg_dump", lambda: pg_dump_waits_for_a_lock(stack, big_database))
        backup.kill()
        backup.communicate(timeout=30)
        try:
            assert wait_until_gone(pg_dump.pid), "pg_dump outlived the killed backup"
        finally:
            with contextlib.suppress(psutil.Error):
                pg_dump.kill()
    assert server_sessions(stack, big_database) == []
    [temp] = [p for p in backup_dir.iterdir()]
    assert temp.name.startswith(".tmp-")  # a SIGKILL leaves no chance to clean up: prune's job

    listing = json.loads(cli("backup", "list", "--json", env=env).stdout)
    assert listing["backups"] == []
    [shown] = listing["temporary"]
    assert shown["name"] == temp.name and shown["kind"] == "backup" and shown["in_use"] is False
    assert temp.name in cli("backup", "list", env=env).stdout

    young = cli("backup", "prune", env=env)  # default grace: one hour
    assert young.returncode == 0 and f"kept {temp.name}" in young.stdout and temp.exists()
    two_hours_ago = time.time() - 7200
    for path in (temp, *temp.iterdir()):
        os.utime(path, (two_hours_ago, two_hours_ago))
    dry = json.loads(cli("backup", "prune", "--dry-run", "--json", env=env).stdout)
    assert [w["name"] for w in dry["temporary_removed"]] == [temp.name] and temp.exists()
    pruned = cli("backup", "prune", env=env)
    assert pruned.returncode == 0 and f"deleted {temp.name}" in pruned.stdout
    assert list(backup_dir.iterdir()) == []


def test_sigterm_during_a_restore_check_drops_the_scratch_database(big_database, tmp_path, stack):
    key = os.urandom(32)
    backup_dir = tmp_path / "backups"
    entry = create_backup(big_database, backup_dir, encryption_key=key)
    cli = start_cli(big_database, backup_dir, "restore-check", entry.id, key=base64.b64encode(key).decode())
    pg_restore = running_tool(cli, "pg_restore", lambda: bool(scratch_databases(stack)))
    assert list(backup_dir.glob(".restore-*/dump.pgc"))  # the decrypted copy pg_restore reads
    cli.send_signal(signal.SIGTERM)
    stdout, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 128 + signal.SIGTERM, (stdout, stderr)
    assert "restore check interrupted by SIGTERM" in stderr and stderr.strip().count("\n") == 0, stderr
    assert wait_until_gone(pg_restore.pid)
    assert scratch_databases(stack) == []
    assert sorted(p.name for p in backup_dir.iterdir()) == [entry.id]  # no decrypted copy left behind
    assert not (entry.path / "verification.json").exists()  # an interrupted check records nothing
