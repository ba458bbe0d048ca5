"""The local Elasticsearch node: one real ES 8 node run in-process by the small Java launcher in
`elasticsearch-node/` (jars from Maven Central, Java 17, HTTP on loopback, path.repo set for
snapshots). It has no x-pack: no ILM, no security, so nothing here depends on them."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import urllib3

from orchestrator_data.stack.common import (
    PidFileServer,
    ServiceStatus,
    StackError,
    ensure_port_free,
    tail,
    terminate,
    wait_until,
)
from orchestrator_data.urls import make_url

MAIN_CLASS = "orchestratordata.esnode.LocalNode"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def node_dir() -> Path:
    return Path(os.environ.get("ORCHESTRATOR_DATA_ES_NODE_DIR", PROJECT_ROOT / "elasticsearch-node"))


def java_binary() -> str:
    java_home = os.environ.get("ES_JAVA_HOME") or os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise StackError("Elasticsearch needs Java 17 or newer and no `java` was found (set JAVA_HOME)")
    return found


def ensure_built() -> tuple[Path, Path]:
    """The launcher's classes and jar directory, building them with Maven when missing."""
    directory = node_dir()
    classes, lib = directory / "target" / "classes", directory / "target" / "lib"
    if classes.is_dir() and lib.is_dir() and any(lib.glob("elasticsearch-8*.jar")):
        return classes, lib
    if not (directory / "pom.xml").exists():
        raise StackError(f"the Elasticsearch launcher is missing: no pom.xml in {directory}")
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("the Elasticsearch node is not built and Maven (`mvn`) is not installed")
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(directory / "pom.xml"), "-DskipTests", "package"],
        capture_output=True, text=True, timeout=1800,
    )
    if result.returncode != 0:
        raise StackError(f"building the Elasticsearch node failed (mvn exit {result.returncode}):\n"
                         f"{(result.stdout + result.stderr)[-3000:]}")
    return classes, lib


def _default_stop_signals() -> None:
    """In the node's process before Java starts: SIGTERM and SIGINT back to their default. A CLI started with
    them ignored (nohup, a background job, a test session) would hand that on, and the JVM leaves a signal
    ignored at its start ignored: `stack stop` could then only kill the node after its 60 s grace."""
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signal.SIG_DFL)


class ElasticsearchService(PidFileServer):
    name = "elasticsearch"
    port_variable = "STACK_ELASTICSEARCH_PORT"

    def __init__(self, root: Path, port: int, heap: str = "512m", start_timeout: float = 180.0,
                 java_options: str = ""):
        self.root = root / "elasticsearch"
        self.home = self.root / "home"
        self.data_dir = self.root / "data"
        self.repo_dir = self.root / "snapshots"
        self.logs_dir = self.root / "logs"
        self.log_file = self.root / "elasticsearch.log"
        self.pid_file = self.root / "elasticsearch.pid"
        self.port = port
        self.heap = heap
        self.java_options = shlex.split(java_options)
        self.start_timeout = start_timeout

    def url(self) -> str:
        return make_url("http", "127.0.0.1", self.port)

    def cmdline_marker(self) -> str:
        return MAIN_CLASS

    def _health(self, timeout: float = 2.0) -> dict | None:
        try:
            response = urllib3.request(
                "GET", f"{self.url()}/_cluster/health", timeout=timeout, retries=False
            )
        except urllib3.exceptions.HTTPError:
            return None
        if response.status != 200:
            return None
        return response.json()

    def start(self) -> ServiceStatus:
        if self.is_running():
            return self.status()
        stale = self.remove_stale_pid_file()
        ensure_port_free(self.port, "Elasticsearch", self.port_variable)
        classes, lib = ensure_built()
        for directory in (self.home, self.data_dir, self.repo_dir, self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        command = [
            java_binary(), f"-Xms{self.heap}", f"-Xmx{self.heap}", *self.java_options,
            "-cp", f"{classes}{os.pathsep}{lib}{os.sep}*",
            MAIN_CLASS,
            "--home", str(self.home), "--data", str(self.data_dir), "--repo", str(self.repo_dir),
            "--logs", str(self.logs_dir), "--http-port", str(self.port), "--host", "127.0.0.1",
            "--cluster-name", "orchestrator-data",
        ]
        process = self.spawn(command, self.log_file, preexec_fn=_default_stop_signals)

        def ready() -> bool:
            if process.poll() is not None:
                return True
            health = self._health()
            return bool(health and health.get("status") in {"green", "yellow"})

        wait_until(ready, timeout=self.start_timeout, interval=0.5)
        if process.poll() is not None:
            self.pid_file.unlink(missing_ok=True)
            raise StackError(
                f"Elasticsearch exited with code {process.returncode} while starting. Last lines of "
                f"{self.log_file}:\n{tail(self.log_file)}"
            )
        health = self._health()
        if not health or health.get("status") not in {"green", "yellow"}:
            terminate(process.pid)
            self.pid_file.unlink(missing_ok=True)
            raise StackError(
                f"Elasticsearch did not reach cluster health yellow within {self.start_timeout:.0f} s. "
                f"Last lines of {self.log_file}:\n{tail(self.log_file)}"
            )
        status = self.status()
        if stale is not None:
            status.detail["note"] = f"removed a stale pid file (pid {stale} was not a running Elasticsearch node)"
        return status

    stop_timeout = 60.0  # a node flushing its shards on SIGTERM

    def status(self) -> ServiceStatus:
        pid = self._pid()
        status = ServiceStatus(
            name=self.name, running=pid is not None, url=self.url(), pid=pid,
            data_dir=str(self.data_dir), log_file=str(self.log_file), port=self.port,
        )
        status.detail["snapshot_repo"] = str(self.repo_dir)
        if pid is not None:
            try:
                response = urllib3.request("GET", self.url(), timeout=5, retries=False)
                status.version = response.json()["version"]["number"]
                health = self._health()
                status.detail["cluster_status"] = health.get("status") if health else None
            except (urllib3.exceptions.HTTPError, ValueError, KeyError) as exc:
                status.detail["error"] = type(exc).__name__
        return status

