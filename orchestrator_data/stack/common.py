"""What the three local services share: their status record, pid files, port probes, secrets."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from orchestrator_data.errors import OperationFailed
from orchestrator_data.settings import SettingsError
from orchestrator_data.urls import mask_url


class StackError(OperationFailed):
    """A local service that cannot be started, stopped or found. The message is safe to print."""


@dataclass
class ServiceStatus:
    name: str
    running: bool
    url: str | None = None  # carries the password: never print it, use `masked_url`
    pid: int | None = None
    version: str | None = None
    data_dir: str | None = None
    log_file: str | None = None
    port: int | None = None
    detail: dict = field(default_factory=dict)

    @property
    def masked_url(self) -> str | None:
        return mask_url(self.url)

    def public(self) -> dict:
        """The record without any secret, for output."""
        record = asdict(self)
        record["url"] = self.masked_url
        return record


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def ensure_port_free(port: int, service: str, variable: str) -> None:
    if port_in_use(port):
        owner = _port_owner(port)
        raise StackError(
            f"{service}: port {port} on 127.0.0.1 is already in use{owner}; stop that process or "
            f"choose another port with {variable}"
        )


def _port_owner(port: int) -> str:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except (psutil.Error, OSError):
        pass
    return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None, expect_in_cmdline: str | None = None) -> bool:
    """True when `pid` runs and, if given, its command line mentions `expect_in_cmdline`
    (a recycled pid then does not pass for our server)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if expect_in_cmdline is not None:
            return expect_in_cmdline in " ".join(proc.cmdline())
        return True
    except psutil.Error:
        return False


def terminate(pid: int, timeout: float = 30.0) -> bool:
    """SIGTERM, wait, then SIGKILL. True when the process had to be killed."""
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return False
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return False
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
            proc.wait(10)
        return True


def tail(path: Path, lines: int = 40) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(content[-lines:])


def wait_until(predicate, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class PidFileServer:
    """A server this stack started itself and tracks by its pid file. A recorded pid counts only
    while its process runs and its command line carries `cmdline_marker` (pids get reused)."""

    pid_file: Path

    def cmdline_marker(self) -> str:
        raise NotImplementedError

    def _pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid_alive(pid, expect_in_cmdline=self.cmdline_marker()) else None

    def is_running(self) -> bool:
        return self._pid() is not None

    def spawn(self, args: list[str], log_file: Path, **popen) -> subprocess.Popen:
        """Start the server in a session of its own (it outlives the CLI that started it), its output
        appended to `log_file`, and record its pid."""
        with open(log_file, "ab") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, **popen)
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def await_ready(self, process: subprocess.Popen, ready, timeout_s: float, interval: float,
                    failure: str, log_file: Path) -> None:
        """Poll `ready()` until it holds; a server that exits first or takes longer than `timeout_s` is
        stopped, its pid file removed, and StackError says `failure` with the last lines of its log."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                terminate(process.pid, timeout=10)
                self.pid_file.unlink(missing_ok=True)
                raise StackError(f"{failure}. Last lines of {log_file}:\n{tail(log_file, 10)}")
            time.sleep(interval)

    stop_timeout: float = 30.0  # seconds between SIGTERM and SIGKILL

    def stop(self) -> bool:
        """SIGTERM (SIGKILL after `stop_timeout`) to the recorded server, its pid file removed either
        way; False when none was running."""
        pid = self._pid()
        if pid is not None:
            terminate(pid, timeout=self.stop_timeout)
        self.pid_file.unlink(missing_ok=True)
        return pid is not None

    def remove_stale_pid_file(self) -> int | None:
        """Drop a pid file whose server is gone; returns the pid it named, if any."""
        stale = read_pid(self.pid_file)
        if stale is not None:
            self.pid_file.unlink(missing_ok=True)
        return stale


def write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`: a reader (or a
    crash) sees the old content or the new, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(path.parent)  # the rename itself survives a crash


def fsync_directory(path: Path) -> None:
    """Make the names in a directory (a file created, renamed or removed there) survive a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Secrets:
    """Generated passwords of the local stack, kept in a 0600 file under the state directory.

    A password is added under a lock and the file replaced atomically: two commands starting at
    once must not each generate a password and keep only their own (the server would keep the
    other), and an interrupted write must not leave a half file."""

    def __init__(self, path: Path):
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    def get(self, name: str) -> str:
        values = self.read()
        if name in values:
            return values[name]
        with file_lock(self.lock_path):
            values = self.read()  # another process may have added it while we waited
            if name not in values:
                values[name] = secrets.token_urlsafe(24)
                write_atomically(self.path, json.dumps(values), mode=0o600)
        return values[name]

    def read(self) -> dict[str, str]:
        """The passwords generated so far; a SettingsError naming the file when it is corrupt."""
        try:
            values = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise SettingsError(str(self.path), f"cannot be read: {exc.strerror}") from None
        except ValueError:  # not JSON, or not UTF-8
            values = None
        if not isinstance(values, dict) or not all(isinstance(v, str) and v for v in values.values()):
            raise SettingsError(
                str(self.path),
                "is corrupt (not a JSON object of the local stack's passwords): restore it, or remove "
                "the state directory (ORCHESTRATOR_DATA_HOME) to start the local stack afresh, data included",
            )
        return values


@contextlib.contextmanager
def file_lock(path: Path):
    """Serialises `stack start/stop` of one state directory across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
