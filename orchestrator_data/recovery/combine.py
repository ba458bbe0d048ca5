"""Combining an incremental chain in place: the full backup's unpacked copy becomes the combined
cluster, only the blocks the incrementals changed are written into it.

pg_combinebackup writes a new directory: every relation file an incremental touched is written anew
whole (a 900 MB table rewritten for 5 % of its blocks), unchanged files linked. A restore's pieces are
private scratch copies unpacked for this one restore, so the full one may be changed where it lies.
The result is the one pg_combinebackup builds (src/bin/pg_combinebackup: reconstruct.c,
pg_combinebackup.c, backup_label.c), file for file and byte for byte (backup_manifest aside, which a
restore does not use; zero blocks are holes here):

- the files are the newest piece's: a file of an older piece the newest lacks (a dropped relation) goes;
- `INCREMENTAL.<name>` (only under base/, global and pg_tblspc/) is rebuilt from the chain: the newest
  full copy of <name> (the full backup's, or a later piece that sent it whole), cut to the newest
  incremental's truncation length, then each later incremental's blocks (those below that length; all
  of the newest one's), then extended with zeros to its length — the block length pg_combinebackup
  computes;
- every other file is the newest piece's own;
- backup_label is the newest piece's without its INCREMENTAL FROM lines.

Everything is read and checked before anything is changed: anything unexpected (a header this code
does not know, a missing source, a chain whose labels do not follow) raises NotCombinable with every
piece untouched, and the caller uses pg_combinebackup instead."""

from __future__ import annotations

import errno
import os
import re
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator_data.errors import OperationFailed

BLCKSZ = 8192                      # the block size the tools were built with (checked: pg_control)
RELSEG_SIZE = 131072               # blocks per relation segment file (1 GB)
INCREMENTAL_MAGIC = 0xD3AE1F0D
INCREMENTAL_PREFIX = "INCREMENTAL."
_HEADER = struct.Struct("<III")    # magic, number of blocks, truncation block length (native: little endian here)
_LABEL_START = re.compile(r"^START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) ", re.M)
_LABEL_TIMELINE = re.compile(r"^START TIMELINE: (\d+)$", re.M)
_LABEL_FROM_LSN = re.compile(r"^INCREMENTAL FROM LSN: ([0-9A-F]+/[0-9A-F]+)$", re.M)
_LABEL_FROM_TLI = re.compile(r"^INCREMENTAL FROM TLI: (\d+)$", re.M)


class NotCombinable(OperationFailed):
    """The chain is not one this code combines exactly: nothing was changed; use pg_combinebackup
    (caught by base_backups.combine, which does; never reaches a user)."""


@dataclass(frozen=True)
class Incremental:
    path: Path
    blocks: tuple[int, ...]        # relative block numbers, in file order
    truncation: int                # truncation_block_length
    header_length: int             # where the first block's data starts

    def offset(self, index: int) -> int:
        return self.header_length + index * BLCKSZ


@dataclass
class _Rebuilt:
    relative: str                  # the output file, relative to the data directory
    full: Path                     # the newest whole copy in the chain
    full_size: int
    incrementals: list[Incremental]  # oldest first; the last is the newest piece's


@dataclass
class Plan:
    moves: list[str] = field(default_factory=list)            # whole files of the newest piece, relative
    rebuilt: list[_Rebuilt] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)      # the newest piece's directories, relative
    label: str = ""


def read_incremental(path: Path) -> Incremental:
    """An INCREMENTAL file's header (reconstruct.c, make_incremental_rfile), checked against its size."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(_HEADER.size)
        if len(head) != _HEADER.size:
            raise NotCombinable(f"{path}: shorter than an incremental file's header")
        magic, count, truncation = _HEADER.unpack(head)
        if magic != INCREMENTAL_MAGIC:
            raise NotCombinable(f"{path}: unknown incremental magic number 0x{magic:x}")
        if count > RELSEG_SIZE or truncation > RELSEG_SIZE:
            raise NotCombinable(f"{path}: block count or truncation length beyond a segment")
        numbers = fh.read(4 * count)
    if len(numbers) != 4 * count:
        raise NotCombinable(f"{path}: its block numbers are cut short")
    header = _HEADER.size + 4 * count
    if count and header % BLCKSZ:
        header += BLCKSZ - header % BLCKSZ   # the blocks start aligned (PostgreSQL 18)
    if size != header + count * BLCKSZ:
        raise NotCombinable(f"{path}: {size} bytes, expected {header + count * BLCKSZ} for {count} blocks")
    blocks = struct.unpack(f"<{count}I", numbers) if count else ()
    return Incremental(path, tuple(blocks), truncation, header)


def _label(piece: Path) -> tuple[str, str, int, str | None, int | None]:
    try:
        text = (piece / "backup_label").read_text()
    except (FileNotFoundError, UnicodeDecodeError) as exc:
        raise NotCombinable(f"{piece}: backup_label unreadable ({exc})") from None
    start, timeline = _LABEL_START.search(text), _LABEL_TIMELINE.search(text)
    if not start or not timeline:
        raise NotCombinable(f"{piece}: backup_label without START WAL LOCATION or START TIMELINE")
    from_lsn, from_tli = _LABEL_FROM_LSN.search(text), _LABEL_FROM_TLI.search(text)
    if bool(from_lsn) != bool(from_tli):
        raise NotCombinable(f"{piece}: backup_label has one INCREMENTAL FROM line without the other")
    return (text, start.group(1), int(timeline.group(1)), from_lsn.group(1) if from_lsn else None,
            int(from_tli.group(1)) if from_tli else None)


def _system_identifier(piece: Path) -> bytes:
    try:
        with open(piece / "global" / "pg_control", "rb") as fh:
            return fh.read(8)   # ControlFileData starts with the system identifier
    except FileNotFoundError:
        raise NotCombinable(f"{piece}: global/pg_control is missing") from None


def _check_chain(pieces: list[Path]) -> str:
    """backup_label and pg_control of each piece follow on (pg_combinebackup's own checks); returns the
    newest label."""
    labels = [_label(piece) for piece in pieces]
    if labels[0][3] is not None:
        raise NotCombinable(f"{pieces[0]} is an incremental backup, but the first piece must be a full one")
    for previous, (piece, label) in zip(labels, zip(pieces[1:], labels[1:])):
        if label[3] is None:
            raise NotCombinable(f"{piece} is a full backup, but only the first piece may be one")
        if (label[3], label[4]) != (previous[1], previous[2]):
            raise NotCombinable(f"{piece} follows {label[3]} on timeline {label[4]}, not the piece before it")
    if len({_system_identifier(piece) for piece in pieces}) != 1:
        raise NotCombinable("the pieces belong to different clusters (system identifiers differ)")
    return labels[-1][0]


def _incremental_directory(relative: str) -> bool:
    return relative.startswith("base/") or relative == "global" or relative.startswith("pg_tblspc/")


def plan(pieces: list[Path]) -> Plan:
    """Read the chain (oldest first) and decide every file of the result, changing nothing."""
    if len(pieces) < 2:
        raise NotCombinable("a chain of one piece has nothing to combine")
    result = Plan(label=_check_chain(pieces))
    newest = pieces[-1]
    pending = [""]
    while pending:
        relative_dir = pending.pop()
        with os.scandir(newest / relative_dir) as entries:   # the entry types come with the listing: no stat each
            for entry in entries:
                relative = os.path.join(relative_dir, entry.name)
                if entry.is_symlink():
                    raise NotCombinable(f"{entry.path}: a symbolic link (a tablespace?) in the chain")
                if entry.is_dir():
                    result.directories.append(relative)
                    pending.append(relative)
                elif not entry.is_file():
                    raise NotCombinable(f"{entry.path}: not a regular file")
                elif relative in ("backup_label", "backup_manifest"):
                    continue
                elif _incremental_directory(relative_dir) and entry.name.startswith(INCREMENTAL_PREFIX):
                    bare = os.path.join(relative_dir, entry.name[len(INCREMENTAL_PREFIX):])
                    result.rebuilt.append(_sources(pieces, bare))
                else:
                    result.moves.append(relative)
    result.directories.sort()   # parents before their children
    return result


def _sources(pieces: list[Path], relative: str) -> _Rebuilt:
    """reconstruct.c's search: from the newest piece back to the first whole copy of the file."""
    directory, name = os.path.split(relative)
    incrementals = []
    for piece in reversed(pieces):
        whole = piece / relative
        if piece is not pieces[-1]:
            try:
                size = whole.stat().st_size
            except FileNotFoundError:
                pass
            else:
                return _Rebuilt(relative, whole, size, list(reversed(incrementals)))
        partial = piece / directory / (INCREMENTAL_PREFIX + name)
        if not partial.is_file():
            raise NotCombinable(f"{relative}: neither whole nor incremental in {piece}")
        incrementals.append(read_incremental(partial))
    raise NotCombinable(f"{relative}: no whole copy anywhere in the chain")


def _copy_range(source: int, target: int, length: int, source_offset: int, target_offset: int) -> None:
    """Copy inside the kernel (copy_file_range), or through a buffer where the file system cannot."""
    while length:
        try:
            done = os.copy_file_range(source, target, length, source_offset, target_offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            done = os.pwrite(target, os.pread(source, min(length, 1 << 20), source_offset), target_offset)
        if done <= 0:
            raise OSError(f"could not copy {length} bytes at offset {source_offset}")
        length, source_offset, target_offset = length - done, source_offset + done, target_offset + done


def _rebuild(rebuilt: _Rebuilt, output: Path) -> None:
    newest = rebuilt.incrementals[-1]
    length = max([newest.truncation, *(b + 1 for b in newest.blocks)])
    # the newest piece's block of each number wins: map block -> (incremental, index), oldest first
    chosen: dict[int, tuple[Incremental, int]] = {}
    for incremental in rebuilt.incrementals:
        for index, block in enumerate(incremental.blocks):
            if incremental is newest or block < newest.truncation:
                chosen[block] = (incremental, index)
    if not chosen and rebuilt.full == output and rebuilt.full_size == length * BLCKSZ:
        return   # unchanged since the full backup (most files): nothing to write
    if rebuilt.full != output:
        os.replace(rebuilt.full, output)   # a later piece sent it whole: that copy is the base
    handles: dict[Path, int] = {}
    fd = os.open(output, os.O_RDWR)
    try:
        kept = min(os.fstat(fd).st_size // BLCKSZ, newest.truncation)
        os.ftruncate(fd, kept * BLCKSZ)   # blocks past the truncation length are not the file's any more
        run_start = previous = None
        for block in sorted(chosen):
            incremental, index = chosen[block]
            if previous is not None and block == previous[0] + 1 and incremental is previous[1] \
                    and index == previous[2] + 1:
                previous = (block, incremental, index)
                continue
            if run_start is not None:
                _flush(handles, fd, run_start, previous)
            run_start = previous = (block, incremental, index)
        if run_start is not None:
            _flush(handles, fd, run_start, previous)
        os.ftruncate(fd, length * BLCKSZ)   # zeros up to the length (blocks no WAL summary mentioned)
    finally:
        os.close(fd)
        for handle in handles.values():
            os.close(handle)


def _flush(handles: dict[Path, int], fd: int, first: tuple, last: tuple) -> None:
    block, incremental, index = first
    source = handles.get(incremental.path)
    if source is None:
        source = handles[incremental.path] = os.open(incremental.path, os.O_RDONLY)
    count = last[0] - block + 1
    _copy_range(source, fd, count * BLCKSZ, incremental.offset(index), block * BLCKSZ)


def _strip_label(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.startswith(("INCREMENTAL FROM LSN: ", "INCREMENTAL FROM TLI: ")))


def combine_in_place(pieces: list[Path], block_size: int = BLCKSZ) -> Path:
    """Combine the chain's unpacked pieces (oldest first) into the first one and return it. Raises
    NotCombinable, with every piece untouched, when the chain is not one this code knows (`block_size`:
    the cluster's, from pg_controldata)."""
    if block_size != BLCKSZ:
        raise NotCombinable(f"block size {block_size}, this code combines {BLCKSZ}-byte blocks only")
    the_plan = plan(pieces)
    output, newest = pieces[0], pieces[-1]
    for relative in the_plan.directories:
        (output / relative).mkdir(mode=0o700, exist_ok=True)
    for relative in the_plan.moves:
        os.replace(newest / relative, output / relative)
    for rebuilt in the_plan.rebuilt:
        _rebuild(rebuilt, output / rebuilt.relative)
    label = output / "backup_label"
    temporary = output / ".backup_label.tmp"
    temporary.write_text(_strip_label(the_plan.label))
    os.chmod(temporary, 0o600)
    os.replace(temporary, label)
    _remove_what_the_newest_lacks(output, the_plan)
    return output


def _remove_what_the_newest_lacks(output: Path, the_plan: Plan) -> None:
    """Files and directories of the full piece that the newest piece does not have (dropped since)."""
    keep_files = {*the_plan.moves, *(r.relative for r in the_plan.rebuilt), "backup_label"}
    keep_dirs = set(the_plan.directories)
    for directory, dirs, files in os.walk(output, topdown=True):
        relative_dir = os.path.relpath(directory, output)
        relative_dir = "" if relative_dir == "." else relative_dir
        for name in list(dirs):
            relative = os.path.join(relative_dir, name)
            if relative not in keep_dirs:
                shutil.rmtree(os.path.join(directory, name))
                dirs.remove(name)
        for name in files:
            if os.path.join(relative_dir, name) not in keep_files:
                os.unlink(os.path.join(directory, name))
