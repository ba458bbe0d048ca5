"""A local S3-compatible server for the tests (and by hand for the local stack): MinIO, built from the Go
module proxy at a pinned version into a cache directory outside the clone, started on a free port.

Why MinIO (docs/backups.md, "Copies off the machine"): it verifies SigV4 signatures (a wrong secret is
refused, as by S3), verifies the `x-amz-checksum-sha256` of each upload and multipart part and reports
the composite checksum of multipart objects, and is one static binary that `go install` builds from the
module proxy (its go.mod has no replace directives). MinIO tags its releases `RELEASE.<date>`, which are
not semantic versions, so the proxy knows its commits by pseudo-version; the pin below is the newest.

    python -m orchestrator_data.stack.object_store build     # (make minio) build into the cache once
    python -m orchestrator_data.stack.object_store path      # where the binary is (or would be)
    python -m orchestrator_data.offsite.local_server [DIR]  # the local stack's store (OFFSITE_* settings)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from orchestrator_data.stack.common import StackError, free_port, tail, terminate

MODULE = "github.com/minio/minio"
VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
BINARY_VARIABLE = "MINIO_BINARY"
CACHE_VARIABLE = "ORCHESTRATOR_DATA_CACHE"


def cache_dir() -> Path:
    """Survives the clone (CI takes a fresh clone each run): ORCHESTRATOR_DATA_CACHE, else
    $XDG_CACHE_HOME/orchestrator-data, else ~/.cache/orchestrator-data."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "orchestrator-data"


def binary() -> Path:
    """MINIO_BINARY, else the pinned build in the cache."""
    if os.environ.get(BINARY_VARIABLE):
        return Path(os.environ[BINARY_VARIABLE]).expanduser()
    return cache_dir() / "minio" / VERSION / "minio"


def go_binary() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not found:
        raise StackError("building MinIO needs Go 1.24 or newer (`go` on PATH or /usr/local/go/bin/go)")
    return found


def build() -> Path:
    """`go install` the pinned MinIO into the cache (a no-op when it is there); returns the binary."""
    target = binary()
    if target.is_file() and os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as scratch:
        environment = {**os.environ, "GOBIN": scratch, "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"}
        result = subprocess.run([go_binary(), "install", f"{MODULE}@{VERSION}"], env=environment,
                                capture_output=True, text=True, timeout=3600)
        if result.returncode != 0:
            raise StackError(f"building MinIO {VERSION} failed: {result.stderr.strip()[-1500:]}")
        os.replace(Path(scratch) / "minio", target)  # appears whole or not at all
    return target


@dataclass
class MinioServer:
    """One MinIO server on loopback, its data in `data_dir`; `endpoint` once started."""

    data_dir: Path
    access_key: str
    secret_key: str
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self, timeout: float = 60.0) -> MinioServer:
        executable = binary()
        if not executable.is_file():
            raise StackError(f"MinIO is not built ({executable} is missing): run `make minio`")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        environment = {**os.environ, "MINIO_ROOT_USER": self.access_key, "MINIO_ROOT_PASSWORD": self.secret_key,
                       "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"}
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [str(executable), "server", "--quiet", "--address", f"127.0.0.1:{self.port}", str(self.data_dir)],
                env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StackError(f"MinIO did not start on port {self.port}: {tail(self.log_file, 20)}")
            time.sleep(0.1)
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/minio/health/ready", timeout=1) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process.pid, timeout=10)
            self.process.wait(5)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "path"
    if command == "build":
        started = time.monotonic()
        built = build()
        print(f"{built} ({time.monotonic() - started:.0f} s)")
        return 0
    if command == "path":
        print(binary())
        return 0
    print("usage: python -m orchestrator_data.stack.object_store build|path", file=sys.stderr)
    return 2


if __name__ == "__main__":
    from orchestrator_data.errors import DataLayerError, exit_code

    try:
        sys.exit(main(sys.argv[1:]))
    except DataLayerError as exc:  # one line, as the CLI says it (MinIO not built, no Go, a bad setting)
        print(f"error: {exc.one_line()}", file=sys.stderr)
        sys.exit(exit_code(exc))
