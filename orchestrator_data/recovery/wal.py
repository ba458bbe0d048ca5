"""The WAL archive: what is in it, sealing completed segments, staging segments for a restore,
reading commits and restore points out of them (pg_waldump), and finding gaps.

A completed segment is sealed: encrypted with the current backup key when one is configured
(`<segment>.<key_id>.enc`, the dumps' envelope, fsynced, then the plaintext removed), else kept as
pg_receivewal wrote and fsynced it. The segment being written (`<segment>.partial`) is plaintext
until it completes: encrypting it would mean rewriting the file at every commit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from orchestrator_data.backups.crypto import decrypt_file, encrypt_stream, key_id as key_id_of
from orchestrator_data.recovery.errors import ArchiveCorrupt, RecoveryError
from orchestrator_data.recovery.layout import (
    ENCRYPTED_SUFFIX, HISTORY_NAME, PARTIAL_SUFFIX, int_to_lsn, lsn_to_int,
    parse_segment_name, segment_name,
)
from orchestrator_data.recovery.server import tool
from orchestrator_data.stack.common import fsync_directory

KeyFor = Callable[[str], bytes]


@dataclass(frozen=True)
class ArchivedFile:
    path: Path
    name: str            # the WAL file's own name (segment or history), without our suffixes
    timeline: int
    segno: int | None    # None for a history file
    partial: bool
    key_id: str | None   # set when encrypted

    @property
    def encrypted(self) -> bool:
        return self.key_id is not None


def _read_name(path: Path, segment_size: int) -> ArchivedFile | None:
    name, key_id, partial = path.name, None, False
    if name.startswith("."):
        return None
    if name.endswith(ENCRYPTED_SUFFIX):
        parts = name[: -len(ENCRYPTED_SUFFIX)].rsplit(".", 1)
        if len(parts) != 2:
            return None
        name, key_id = parts
    if name.endswith(PARTIAL_SUFFIX):
        name, partial = name[: -len(PARTIAL_SUFFIX)], True
    history = HISTORY_NAME.match(name)
    if history:
        return ArchivedFile(path, name, int(history.group(1), 16), None, False, key_id)
    parsed = parse_segment_name(name, segment_size)
    if parsed is None:
        return None
    return ArchivedFile(path, name, parsed[0], parsed[1], partial, key_id)


def list_archive(wal_dir: Path, segment_size: int) -> list[ArchivedFile]:
    """Every WAL file of the archive; a segment stored twice (sealed while a crash left its plaintext)
    is listed once, sealed first. Sorted by timeline then segment."""
    if not wal_dir.is_dir():
        return []
    found: dict[tuple, ArchivedFile] = {}
    for path in wal_dir.iterdir():
        item = _read_name(path, segment_size)
        if item is None:
            continue
        key = (item.timeline, item.segno, item.name, item.partial)
        if key not in found or item.encrypted:
            found[key] = item
    complete = {(f.timeline, f.segno) for f in found.values() if not f.partial and f.segno is not None}
    # a .partial whose completed segment exists is a leftover of pg_receivewal's rename
    items = [f for f in found.values() if not (f.partial and (f.timeline, f.segno) in complete)]
    return sorted(items, key=lambda f: (f.timeline, f.segno if f.segno is not None else -1, f.partial))


def seal(wal_dir: Path, segment_size: int, key: bytes | None) -> list[str]:
    """Encrypt every completed plaintext segment and history file (when a key is given); returns the names sealed."""
    if key is None:
        return []
    sealed = []
    kid = key_id_of(key)
    for item in list_archive(wal_dir, segment_size):
        if item.encrypted or item.partial:
            continue
        target = wal_dir / f"{item.name}.{kid}{ENCRYPTED_SUFFIX}"
        temporary = wal_dir / f".{target.name}.tmp"
        with open(item.path, "rb") as fin, open(temporary, "wb") as fout:
            encrypt_stream(fin, fout, key)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(temporary, target)
        fsync_directory(wal_dir)
        item.path.unlink()  # only once the sealed copy is durable
        sealed.append(item.name)
    if sealed:
        fsync_directory(wal_dir)
    return sealed


def materialize(item: ArchivedFile, destination: Path, key_for: KeyFor | None) -> None:
    """Write the plaintext of one archived file to `destination` (decrypting and authenticating it)."""
    if item.encrypted:
        if key_for is None:
            raise RecoveryError(f"WAL file {item.path.name} is encrypted and no backup key is configured")
        key = key_for(item.key_id)  # a key the ring lacks is bad input, not a corrupt segment
        try:
            decrypt_file(item.path, destination, key)
        except ArchiveCorrupt:
            raise
        except Exception as exc:
            raise ArchiveCorrupt(f"WAL file {item.path.name}: {exc}") from None
    else:
        shutil.copyfile(item.path, destination)


@dataclass
class Staged:
    directory: Path
    timeline: int
    first_segno: int
    last_segno: int | None
    missing: list[int] = field(default_factory=list)  # segment numbers absent between first and last


def stage(wal_dir: Path, destination: Path, *, segment_size: int, timeline: int, from_lsn: int,
          key_for: KeyFor | None, until_segno: int | None = None) -> Staged:
    """Copy (decrypting) the archive's segments of `timeline` from the one holding `from_lsn` on into
    `destination`, named as PostgreSQL expects; history files too. Stops at the first missing segment
    (WAL after a gap cannot be replayed) and records which are missing."""
    destination.mkdir(parents=True, exist_ok=True)
    first = from_lsn // segment_size
    items = list_archive(wal_dir, segment_size)
    segments = {f.segno: f for f in items if f.timeline == timeline and f.segno is not None and f.segno >= first
                and (until_segno is None or f.segno <= until_segno)}
    for f in items:
        if f.segno is None:
            materialize(f, destination / f.name, key_for)
    staged = Staged(destination, timeline, first, None)
    if not segments:
        staged.missing = [first]
        return staged
    expected = first
    for segno in sorted(segments):
        if segno != expected:
            staged.missing = list(range(expected, segno))
            break
        materialize(segments[segno], destination / segments[segno].name, key_for)
        staged.last_segno = segno
        expected = segno + 1
    return staged


# -- reading the WAL ---------------------------------------------------------------------------------
_RECORD = re.compile(r"rmgr: (\w+)\s+len.*?tx:\s+(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F/]+, desc: (.*)$")
_COMMIT = re.compile(r"^(COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")
_RESTORE_POINT = re.compile(r"^RESTORE_POINT (.*)$")
_END = re.compile(r"at ([0-9A-F]+/[0-9A-F]+): (?:expected|invalid|contrecord|missing|record with)")


@dataclass(frozen=True)
class Commit:
    lsn: int
    xid: int
    time: datetime
    committed: bool   # False: an abort record


@dataclass(frozen=True)
class RestorePointRecord:
    lsn: int
    name: str


@dataclass
class WalIndex:
    """The transaction ends and restore points found in a stretch of WAL, and where valid WAL ends."""

    start_lsn: int
    end_lsn: int
    commits: list[Commit]
    restore_points: list[RestorePointRecord]

    def last_commit(self) -> Commit | None:
        committed = [c for c in self.commits if c.committed]
        return committed[-1] if committed else None

    def first_commit(self) -> Commit | None:
        committed = [c for c in self.commits if c.committed]
        return committed[0] if committed else None

    def transaction(self, xid: int) -> Commit | None:
        return next((c for c in self.commits if c.xid == xid), None)

    def restore_point(self, name: str) -> RestorePointRecord | None:
        """The newest restore point of that name (a name reused, e.g. by a migration applied twice)."""
        matches = [p for p in self.restore_points if p.name == name]
        return matches[-1] if matches else None


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text + "+00:00")


def scan(directory: Path, timeline: int, start_lsn: int, end_segno: int | None, segment_size: int) -> WalIndex:
    """Read commits, aborts and restore points from `start_lsn` to the end of the valid WAL in
    `directory` (staged plaintext segments) with pg_waldump."""
    args = [tool("pg_waldump"), "-p", str(directory), "-t", str(timeline), "-s", int_to_lsn(start_lsn),
            "-r", "Transaction", "-r", "XLOG"]
    if end_segno is not None:
        args += ["-e", int_to_lsn((end_segno + 1) * segment_size)]
    result = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}, timeout=3600)
    commits, points = [], []
    last_end = start_lsn
    for line in result.stdout.splitlines():
        match = _RECORD.match(line)
        if not match:
            continue
        rmgr, xid, lsn, desc = match.group(1), int(match.group(2)), lsn_to_int(match.group(3)), match.group(4)
        last_end = lsn
        if rmgr == "Transaction":
            ended = _COMMIT.match(desc)
            if ended:
                commits.append(Commit(lsn, xid, _utc(ended.group(2)), ended.group(1) == "COMMIT"))
        elif rmgr == "XLOG":
            point = _RESTORE_POINT.match(desc)
            if point:
                points.append(RestorePointRecord(lsn, point.group(1).strip()))
    end = _END.search(result.stderr)
    if end:
        end_lsn = lsn_to_int(end.group(1))
    elif end_segno is not None and result.returncode == 0:
        end_lsn = (end_segno + 1) * segment_size
    elif "could not find file" in result.stderr and end_segno is not None:
        end_lsn = (end_segno + 1) * segment_size
    elif result.returncode != 0 and not result.stdout:
        raise ArchiveCorrupt(f"pg_waldump cannot read the archive from {int_to_lsn(start_lsn)}: "
                             f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no output'}")
    else:
        end_lsn = last_end
    return WalIndex(start_lsn, end_lsn, commits, points)


# -- gaps ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gap:
    timeline: int
    first_missing: str        # segment name
    last_missing: str
    from_lsn: int             # first byte that is missing
    to_lsn: int               # first byte present again

    def as_dict(self) -> dict:
        return {"timeline": self.timeline, "first_missing": self.first_missing, "last_missing": self.last_missing,
                "from_lsn": int_to_lsn(self.from_lsn), "to_lsn": int_to_lsn(self.to_lsn)}


def find_gaps(wal_dir: Path, segment_size: int, from_lsn: int | None = None) -> list[Gap]:
    """Missing segments of each timeline between `from_lsn` (e.g. the oldest base backup's start; default
    the first segment archived) and the newest segment archived."""
    by_timeline: dict[int, list[int]] = {}
    for item in list_archive(wal_dir, segment_size):
        if item.segno is not None:
            by_timeline.setdefault(item.timeline, []).append(item.segno)
    gaps = []
    for timeline, numbers in sorted(by_timeline.items()):
        present = sorted(set(numbers))
        expected = present[0] if from_lsn is None else min(from_lsn // segment_size, present[0])
        for segno in present:
            if segno > expected:
                gaps.append(Gap(timeline, segment_name(timeline, expected, segment_size),
                                segment_name(timeline, segno - 1, segment_size),
                                expected * segment_size, segno * segment_size))
            expected = max(expected, segno + 1)
    return gaps
