"""The GDPR erasure ledger kept outside the database: one JSON line per erasure, append-only.

    {"v": 1, "user_id": "<uuid>", "organization_id": "<uuid>", "erased_at": "<ISO 8601>", "request_id": "<hex>"}

The database's own ledger (`gdpr_erasures`) goes back in time with the database: a restore of an
older backup, or a point-in-time recovery, forgets every erasure after its target and brings the
people back. This file lives beside the backups (GDPR_LEDGER_FILE, default BACKUP_DIR/gdpr-ledger.jsonl),
outside whatever is restored, and `reapply.reapply_erasures` erases them again. It holds the ids
needed to erase again and nothing else about the person.

Each append takes an exclusive lock, writes one whole line with a single write (O_APPEND), and
fsyncs it (and, for a new file, its directory) before returning. erase.erase_postgres appends inside
the database transaction, after the erasure ran and before COMMIT: a ledger that cannot be written
fails the erasure with nothing committed. A crash between the append and the COMMIT leaves a line
whose erasure did not commit: the person asked to be erased, and the next `gdpr erase` or
`gdpr reapply` does it, so that order errs on the side of the person."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from orchestrator_data.errors import OperationFailed
from orchestrator_data.stack.common import fsync_directory

FORMAT = 1


class LedgerError(OperationFailed):
    """The ledger file cannot be written or read; the message names the file, never a person."""

    subject = "erasure ledger"


@dataclass(frozen=True)
class LedgerEntry:
    user_id: uuid.UUID
    organization_id: uuid.UUID | None
    erased_at: datetime
    request_id: str

    def line(self) -> str:
        return json.dumps({"v": FORMAT, "user_id": str(self.user_id),
                           "organization_id": str(self.organization_id) if self.organization_id else None,
                           "erased_at": self.erased_at.isoformat(), "request_id": self.request_id},
                          sort_keys=True) + "\n"

    @property
    def erased_by(self) -> str:
        """Who re-applies it, as the database's ledger and audit trail record it."""
        return f"erasure ledger request {self.request_id}"


@dataclass
class LedgerRead:
    entries: list[LedgerEntry] = field(default_factory=list)  # in file order
    unreadable_lines: list[int] = field(default_factory=list)  # 1-based numbers of lines that do not parse
    exists: bool = True


def new_request_id() -> str:
    return uuid.uuid4().hex


class ErasureLedger:
    def __init__(self, path: Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ErasureLedger({str(self.path)!r})"

    def append(self, entry: LedgerEntry) -> None:
        """Append one line, durably (fsync) before returning. Raises LedgerError naming the file."""
        try:
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                with _locked(fd):
                    # a line torn by a crash must not swallow the next one: end it first
                    size = os.fstat(fd).st_size
                    prefix = b"\n" if size and _last_byte(self.path, size) != b"\n" else b""
                    data = prefix + entry.line().encode()
                    if os.write(fd, data) != len(data):
                        raise OSError(0, "short write")
                    os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_directory(self.path.parent)  # the new file's name survives a crash too
        except OSError as exc:
            raise LedgerError(f"{self.path} cannot be written ({exc.strerror or type(exc).__name__}); "
                              "the erasure was not committed") from None

    def read(self) -> LedgerRead:
        """Every entry, in file order. A missing file is an empty ledger (exists False)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return LedgerRead(exists=False)
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerError(f"{self.path} cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})") \
                from None
        read = LedgerRead()
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                read.entries.append(LedgerEntry(
                    uuid.UUID(item["user_id"]),
                    uuid.UUID(item["organization_id"]) if item.get("organization_id") else None,
                    datetime.fromisoformat(item["erased_at"]), str(item["request_id"])))
            except (ValueError, KeyError, TypeError, AttributeError):
                read.unreadable_lines.append(number)
        return read

    def holds(self, user: uuid.UUID) -> bool:
        return any(entry.user_id == user for entry in self.read().entries)


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1)



def first_per_user(entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """One entry per person, the earliest (a line left by an erasure whose commit failed, then the
    erasure that did commit, name the same person twice)."""
    first: dict[uuid.UUID, LedgerEntry] = {}
    for entry in entries:
        if entry.user_id not in first or entry.erased_at < first[entry.user_id].erased_at:
            first[entry.user_id] = entry
    return sorted(first.values(), key=lambda e: e.erased_at)
