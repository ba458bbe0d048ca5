"""The primary as the recovery tools see it: a libpq connection string without its password (the
password goes through PGPASSWORD, never argv), and facts read from the server."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from orchestrator_data.backups import _pg
from orchestrator_data.recovery.errors import RecoveryError
from orchestrator_data.recovery.layout import lsn_to_int
from orchestrator_data.stack.postgres import bin_dir


@dataclass(frozen=True)
class Primary:
    """The server whose WAL is archived, reached at `url` (which may carry a password)."""

    url: str

    def connstr(self) -> str:
        return _pg.split_password(self.url)[0]

    def env(self, application_name: str | None = None) -> dict[str, str]:
        environment = _pg.tool_env(_pg.split_password(self.url)[1])
        if application_name:
            environment["PGAPPNAME"] = application_name
        environment["TZ"] = "UTC"
        return environment

    def connect(self, application_name: str = "orchestrator-data-recovery") -> psycopg.Connection:
        connstr, password = _pg.split_password(self.url)
        return psycopg.connect(connstr, password=password, autocommit=True, connect_timeout=10,
                               application_name=application_name)


@dataclass(frozen=True)
class ServerFacts:
    system_identifier: str
    timeline: int
    segment_size: int
    current_lsn: int
    server_version: str


def server_facts(primary: Primary) -> ServerFacts:
    with primary.connect() as conn:
        system_identifier, timeline = conn.execute(
            "SELECT system_identifier::text, (SELECT timeline_id FROM pg_control_checkpoint()) "
            "FROM pg_control_system()").fetchone()
        segment_size = int(conn.execute(
            "SELECT setting::bigint * CASE unit WHEN 'B' THEN 1 WHEN 'kB' THEN 1024 WHEN 'MB' THEN 1048576 ELSE 1 END "
            "FROM pg_settings WHERE name = 'wal_segment_size'").fetchone()[0])
        current = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        version = conn.execute("SHOW server_version").fetchone()[0]
    return ServerFacts(system_identifier, int(timeline), segment_size, lsn_to_int(current), version)


def tool(name: str) -> str:
    path = bin_dir() / name
    if not path.exists():
        raise RecoveryError(f"{name} not found in {bin_dir()}")
    return str(path)


def run_tool(args: list[str], *, env: dict | None = None, timeout: float = 3600, what: str) -> subprocess.CompletedProcess:
    """Run one of PostgreSQL's tools; a failure raises RecoveryError with the tail of its stderr (redacted)."""
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout,
                            preexec_fn=_pg.dies_with_parent())
    if result.returncode != 0:
        raise RecoveryError(f"{what} failed (exit {result.returncode}): {_pg.stderr_tail(result.stderr, 3)}")
    return result


def chown_tree(path: Path, user: str) -> None:
    """Hand a new cluster's directory to the server's OS user (as root), mode 0700 at the top."""
    os.chmod(path, 0o700)
    if os.geteuid() != 0:
        return
    import pwd

    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(directory, name), entry.pw_uid, entry.pw_gid)
