"""A one-member etcd (Debian's etcd-server) as Patroni's distributed configuration store on this machine.

One member is enough for a local pair: it is the referee both Patroni members ask, not a replicated store.
A production cluster runs three or five etcd members on other machines (docs/failover.md)."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from orchestrator_data.stack.common import PidFileServer, ServiceStatus, StackError

MEMBER = "orchestrator-etcd"


def etcd_binary() -> str:
    found = shutil.which("etcd") or (Path("/usr/bin/etcd") if Path("/usr/bin/etcd").exists() else None)
    if not found:
        raise StackError("etcd is not installed (the HA pair needs it): apt-get install etcd-server")
    return str(found)


class EtcdService(PidFileServer):
    name = "etcd"

    def __init__(self, root: Path, client_port: int, peer_port: int):
        self.root = root
        self.data_dir = root / "data"
        self.pid_file = root / "etcd.pid"
        self.log_file = root / "etcd.log"
        self.client_port = client_port
        self.peer_port = peer_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def hosts(self) -> str:
        """The `etcd3.hosts` entry of Patroni's configuration."""
        return f"127.0.0.1:{self.client_port}"

    def cmdline_marker(self) -> str:
        return f"--data-dir {self.data_dir}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return json.loads(response.read()).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def start(self, timeout_s: float = 30.0) -> ServiceStatus:
        if self.is_running():
            return self.status()
        self.remove_stale_pid_file()
        self.root.mkdir(parents=True, exist_ok=True)
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [etcd_binary(), "--name", MEMBER, "--data-dir", str(self.data_dir),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{MEMBER}={peer}", "--initial-cluster-state", "new",
                # the leader key is renewed every second: keep an hour of history, not all of it
                "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1h",
                "--logger", "zap", "--log-outputs", "stderr"]
        process = self.spawn(args, self.log_file)
        self.await_ready(process, self.healthy, timeout_s, 0.1, f"etcd did not become healthy on {self.url}",
                         self.log_file)
        return self.status()

    def status(self) -> ServiceStatus:
        pid = self._pid()
        status = ServiceStatus(name=self.name, running=pid is not None, url=self.url, pid=pid,
                               data_dir=str(self.data_dir), log_file=str(self.log_file), port=self.client_port)
        if pid is not None:
            status.detail["healthy"] = self.healthy()
        return status
