"""One Patroni member as a process of the local stack.

Patroni runs PostgreSQL itself, and PostgreSQL refuses to run as root: as root, the member runs as the
server's OS user (stack/postgres.py SYSTEM_USER). That user cannot always run this environment's
interpreter (a pyenv Python under /root is closed to it), so the member runs the first interpreter of the
same minor version that the user can run, with `-S` (no site: Debian's dist-packages would shadow ours) and
this environment's site-packages on PYTHONPATH."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import psutil

from orchestrator_data.replication.patroni_config import MemberSpec, render
from orchestrator_data.stack.common import PidFileServer, ServiceStatus, StackError, pid_alive, tail, write_atomically
from orchestrator_data.stack.postgres import SYSTEM_USER, _as_root, _embedded_postgres, _prepare_permissions


def server_owner() -> tuple[int, int] | None:
    """(uid, gid) of the server's OS user when we are root, else None (we run everything ourselves)."""
    if not _as_root():
        return None
    import pwd

    entry = pwd.getpwnam(SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _as_server_user() -> dict:
    """subprocess arguments that run a child as the server's OS user, its group included."""
    if not _as_root():
        return {}
    return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}


def _candidates() -> list[str]:
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)), os.path.realpath(sys.executable)]
    for directory in ("/usr/bin", "/usr/local/bin"):
        found.append(os.path.join(directory, minor))
    which = shutil.which(minor)
    if which:
        found.append(os.path.realpath(which))
    return list(dict.fromkeys(path for path in found if os.path.exists(path)))


@functools.lru_cache(maxsize=1)
def member_interpreter() -> tuple[str, ...]:
    """The command that starts Python with Patroni importable, as the user the member runs as."""
    site_packages = sysconfig.get_paths()["purelib"]
    if not _as_root():
        return (sys.executable,)
    _embedded_postgres().utils.ensure_prefix_permissions(Path(site_packages) / "patroni")  # traversable by the user
    for candidate in _candidates():
        try:
            probe = subprocess.run([candidate, "-S", "-c", "import patroni, yaml, psutil"], **_as_server_user(),
                                   env={"PYTHONPATH": site_packages, "PATH": os.defpath}, capture_output=True,
                                   timeout=60)
        except OSError:  # a directory on its path is closed to the user
            continue
        if probe.returncode == 0:
            return (candidate, "-S")
    raise StackError(f"no Python {sys.version_info.major}.{sys.version_info.minor} that the user {SYSTEM_USER} "
                     f"may run can import Patroni from {site_packages}: install python3 from Debian "
                     f"(apt-get install python3) or make this interpreter readable by that user")


def member_environment() -> dict[str, str]:
    """A clean environment: no service URL or secret of ours reaches Patroni or the server."""
    environment = {"PATH": os.defpath, "LANG": "C.UTF-8", "TZ": "UTC"}
    if _as_root():
        environment["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
        environment["HOME"] = "/tmp"
    return environment


class PatroniMember(PidFileServer):
    """A Patroni process with its PostgreSQL; tracked by a pid file beside its configuration."""

    def __init__(self, spec: MemberSpec):
        self.spec = spec
        self.name = spec.name
        self.pid_file = spec.root / "patroni.pid"

    def cmdline_marker(self) -> str:
        return str(self.spec.config_file)

    def prepare(self) -> None:
        """The member's directory, owned by the server's user, mode 0700 (Patroni creates the data
        directory inside it: initdb for the first member, pg_basebackup for the others)."""
        self.spec.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.spec.root, 0o700)
        _prepare_permissions(self.spec.root)
        owner = server_owner()
        if owner:
            self.spec.log_file.touch()
            os.chown(self.spec.log_file, *owner)

    def write_config(self, config: dict) -> None:
        """The member's YAML, atomically, mode 0600, owned by the user Patroni runs as (it holds passwords)."""
        write_atomically(self.spec.config_file, render(config), mode=0o600)
        owner = server_owner()
        if owner:
            os.chown(self.spec.config_file, *owner)

    def start(self) -> int:
        """Start Patroni (it returns at once; the caller waits for the role it expects). Returns the pid."""
        pid = self._pid()
        if pid is not None:
            return pid
        self.remove_stale_pid_file()
        args = [*member_interpreter(), "-m", "patroni", str(self.spec.config_file)]
        return self.spawn(args, self.spec.log_file, env=member_environment(), cwd=str(self.spec.root),
                          **_as_server_user()).pid

    def postmaster_pid(self) -> int | None:
        """The member's PostgreSQL server, whether Patroni still runs or not."""
        try:
            pid = int((self.spec.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError, PermissionError):
            return None
        return pid if pid_alive(pid, expect_in_cmdline=str(self.spec.data_dir)) else None

    def kill_postgres(self) -> int | None:
        """kill -9 of the member's PostgreSQL (a drill: the server crashes, Patroni stays)."""
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self) -> None:
        """kill -9 of Patroni and its PostgreSQL (a drill: the whole member is lost at once)."""
        for pid in (self._pid(), self.postmaster_pid()):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def stop(self, timeout_s: float = 60.0) -> bool:
        """SIGTERM to Patroni, which stops its PostgreSQL first; then any server left behind (one whose
        Patroni was killed) is stopped too. True when something was running."""
        pid = self._pid()
        was_running = pid is not None or self.postmaster_pid() is not None
        if pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout_s)
                except psutil.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        self.pid_file.unlink(missing_ok=True)
        orphan = self.postmaster_pid()
        if orphan is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                server = psutil.Process(orphan)
                server.send_signal(signal.SIGINT)  # fast shutdown
                try:
                    server.wait(timeout_s)
                except psutil.TimeoutExpired:
                    server.kill()
        return was_running

    def wait_gone(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while (self._pid() or self.postmaster_pid()) and time.monotonic() < deadline:
            time.sleep(0.1)

    def status(self) -> ServiceStatus:
        pid = self._pid()
        return ServiceStatus(name=f"patroni:{self.name}", running=pid is not None, pid=pid,
                             data_dir=str(self.spec.data_dir), log_file=str(self.spec.log_file),
                             port=self.spec.pg_port)

    def log_tail(self, lines: int = 15) -> str:
        return tail(self.spec.log_file, lines)
