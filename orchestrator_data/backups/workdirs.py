"""Working directories under BACKUP_DIR: `.tmp-<id>/` (a backup being written), `.restore-*/` (a
restore check's decrypted copy) and `.deleting-<id>/` (a backup being pruned).

Each is normally removed by the process that made it. One that was killed (SIGKILL, a crash, the
machine going down) leaves it behind, and a `.restore-*` one holds a decrypted dump. `prune` removes
those, and must never remove one whose process still runs, however long it takes: the owner holds a
shared flock on the directory itself for as long as it works in it. The kernel drops the lock when
the process dies, even by SIGKILL, so "nobody holds the lock" means abandoned, with no pid file to go
stale or be reused. On a file system without working flock (some network mounts) a directory whose
lock cannot be tested counts as in use and is kept. The grace period additionally keeps a directory
changed recently (a new one before its owner took the lock, another host's backup on a shared mount)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

BACKUP_PREFIX = ".tmp-"
RESTORE_PREFIX = ".restore-"
DELETING_PREFIX = ".deleting-"
KINDS = {BACKUP_PREFIX: "backup", RESTORE_PREFIX: "restore-check", DELETING_PREFIX: "delete"}
DEFAULT_GRACE = timedelta(hours=1)


@contextlib.contextmanager
def in_use(path: Path) -> Iterator[None]:
    """Mark the directory as worked in for the duration of the block (see the module docstring)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)  # not inherited by pg_dump/pg_restore (PEP 446)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _claimed(path: Path) -> Iterator[bool]:
    """Try to take the directory's lock exclusively: True (held for the block) when nobody works in it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by its owner, or a file system whose locks cannot be tested
            yield False
            return
        yield True
    finally:
        os.close(fd)


@dataclass
class WorkDir:
    path: Path
    kind: str                 # "backup", "restore-check" or "delete"
    modified_at: datetime     # newest mtime of the directory and what it holds
    size_bytes: int
    in_use: bool              # its process still runs (holds the lock)

    def age(self) -> timedelta:
        return datetime.now(UTC) - self.modified_at

    def abandoned(self, grace: timedelta = DEFAULT_GRACE) -> bool:
        return not self.in_use and self.age() >= grace

    def as_dict(self) -> dict:
        return {"name": self.path.name, "path": str(self.path), "kind": self.kind,
                "modified_at": self.modified_at.isoformat(), "age_s": round(self.age().total_seconds(), 1),
                "size_bytes": self.size_bytes, "in_use": self.in_use}


def _kind(name: str) -> str | None:
    return next((kind for prefix, kind in KINDS.items() if name.startswith(prefix)), None)


def _describe(path: Path, kind: str) -> WorkDir | None:
    try:
        newest, size = path.lstat().st_mtime, 0
        for child in path.rglob("*"):
            stat = child.lstat()
            newest = max(newest, stat.st_mtime)
            size += stat.st_size if child.is_file() else 0
    except FileNotFoundError:  # removed meanwhile by its owner
        return None
    with _claimed(path) as free:
        busy = not free
    return WorkDir(path, kind, datetime.fromtimestamp(newest, UTC), size, busy)


def list_workdirs(backup_dir: Path) -> list[WorkDir]:
    """Every working directory in BACKUP_DIR, oldest first."""
    backup_dir = Path(backup_dir)
    if not backup_dir.is_dir():
        return []
    found = []
    for child in backup_dir.iterdir():
        kind = _kind(child.name)
        if kind and child.is_dir() and not child.is_symlink():
            described = _describe(child, kind)
            if described is not None:
                found.append(described)
    return sorted(found, key=lambda w: (w.modified_at, w.path.name))


def remove_abandoned(backup_dir: Path, grace: timedelta = DEFAULT_GRACE, *,
                     dry_run: bool = False) -> tuple[list[WorkDir], list[WorkDir]]:
    """(removed, kept): remove the working directories nobody works in that are older than `grace`."""
    if grace < timedelta(0):
        raise ValueError("the grace period of temporary directories must be >= 0")
    removed, kept = [], []
    for workdir in list_workdirs(backup_dir):
        if not workdir.abandoned(grace):
            kept.append(workdir)
        elif dry_run:
            removed.append(workdir)
        else:
            with _claimed(workdir.path) as free:  # its lock again: taken meanwhile means in use after all
                if free:
                    shutil.rmtree(workdir.path)
            (removed if free else kept).append(workdir)
    return removed, kept
