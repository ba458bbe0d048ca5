"""A small PostgreSQL cluster of its own (initdb, start, stop), for tests, benchmarks and checks that
must not disturb the stack's server: sync mode, restarts, a primary killed."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from orchestrator_data.recovery.errors import RecoveryError
from orchestrator_data.recovery.server import tool
from orchestrator_data.stack.common import free_port, tail
from orchestrator_data.stack.postgres import SYSTEM_USER, _prepare_permissions, _run_as
from orchestrator_data.urls import make_url


@dataclass
class ScratchCluster:
    data_dir: Path
    port: int

    @classmethod
    def create(cls, data_dir: Path, *, port: int | None = None, wal_segsize_mb: int = 16,
               settings: dict[str, str] | None = None) -> ScratchCluster:
        data_dir.mkdir(parents=True)
        _prepare_permissions(data_dir)
        result = _run_as([tool("initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust",
                          f"--wal-segsize={wal_segsize_mb}", "-E", "UTF8", "--locale-provider=builtin",
                          "--builtin-locale=C.UTF-8", "--no-sync"], timeout=120)
        if result.returncode != 0:
            raise RecoveryError(f"initdb failed: {result.stderr.strip()[-300:]}")
        cluster = cls(data_dir, port or free_port())
        values = {"summarize_wal": "on", "max_slot_wal_keep_size": "256MB", "max_connections": "30",
                  "shared_buffers": "16MB", "listen_addresses": "127.0.0.1", "port": str(cluster.port),
                  "unix_socket_directories": str(data_dir), **(settings or {})}
        with open(data_dir / "postgresql.conf", "a") as conf:
            for key, value in values.items():
                conf.write(f"{key} = '{value}'\n")
        return cluster

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def url(self, database: str = "postgres") -> str:
        return make_url("postgresql", "127.0.0.1", self.port, username="postgres", database=database)

    def start(self, timeout_s: int = 60) -> None:
        result = _run_as([tool("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
                          "-t", str(timeout_s), "start"], timeout=timeout_s + 30)
        if result.returncode != 0:
            raise RecoveryError(f"scratch cluster did not start: {tail(self.log_file, 5)}")

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            _run_as([tool("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop"], timeout=90)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def owned_by_server(path: Path) -> None:
    """Hand a directory to the server's OS user (as root)."""
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
