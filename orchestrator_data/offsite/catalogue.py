"""What the bucket holds — dumps and base backups (those whose manifest is there), WAL files, the age of
the newest copy — and its verification: every object against the local file it was copied from (a
HEAD: size, the store's SHA-256 checksum, the recorded sha256), or, where no local copy is left (or
`download=True`), read back whole and hashed against the sha256 recorded at upload."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orchestrator_data.offsite import checksums, keys
from orchestrator_data.offsite.errors import OffsiteCorrupt, OffsiteMissing
from orchestrator_data.offsite.store import ObjectStore, RemoteObject, _part_size_of, _problems
from orchestrator_data.progress import Report, quiet


@dataclass
class Catalogue:
    where: str
    objects: dict[str, RemoteObject]
    dumps: list[str] = field(default_factory=list)            # ids with a manifest, oldest first
    base_backups: list[str] = field(default_factory=list)
    wal_files: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)       # dump/base ids with files but no manifest

    @property
    def total_bytes(self) -> int:
        return sum(o.size for o in self.objects.values())

    @property
    def newest_copy_at(self) -> datetime | None:
        """When the newest dump, base backup or WAL file arrived (its manifest, for a backup)."""
        times = [o.last_modified for key, o in self.objects.items()
                 if key.startswith(keys.WAL) or key.endswith("/" + keys.MANIFEST)]
        return max(times) if times else None

    def newest_copy_age_s(self, now: datetime | None = None) -> float | None:
        newest = self.newest_copy_at
        return None if newest is None else max(0.0, ((now or datetime.now(UTC)) - newest).total_seconds())

    def files_of(self, kind: str, backup_id: str) -> list[RemoteObject]:
        prefix = f"{kind}/{backup_id}/"
        return [o for key, o in sorted(self.objects.items()) if key.startswith(prefix)]

    def as_dict(self) -> dict:
        newest = self.newest_copy_at
        return {"where": self.where, "objects": len(self.objects), "bytes": self.total_bytes,
                "dumps": self.dumps, "base_backups": self.base_backups, "wal_files": len(self.wal_files),
                "incomplete": self.incomplete, "newest_copy_at": newest.isoformat() if newest else None,
                "newest_copy_age_s": self.newest_copy_age_s()}


def read(store: ObjectStore) -> Catalogue:
    store.check_bucket()
    objects = {o.key: o for o in store.list()}
    catalogue = Catalogue(store.config.where, objects)
    seen: dict[tuple[str, str], bool] = {}
    for key in sorted(objects):
        parts = keys.split(key)
        if parts is not None:
            kind, backup_id, name = parts
            seen[(kind, backup_id)] = seen.get((kind, backup_id), False) or name == keys.MANIFEST
        elif key.startswith(keys.WAL):
            catalogue.wal_files.append(key[len(keys.WAL):])
    for (kind, backup_id), complete in sorted(seen.items()):
        if not complete:
            catalogue.incomplete.append(f"{kind}/{backup_id}")
        elif kind + "/" == keys.DUMPS:
            catalogue.dumps.append(backup_id)
        else:
            catalogue.base_backups.append(backup_id)
    return catalogue


@dataclass
class Verification:
    where: str
    checked: int = 0
    against_local: int = 0          # compared with the local file (HEAD)
    read_back: int = 0              # downloaded and hashed (no local file, or asked for)
    bytes_read_back: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"where": self.where, "ok": self.ok, "checked": self.checked, "against_local": self.against_local,
                "read_back": self.read_back, "bytes_read_back": self.bytes_read_back, "problems": self.problems}


def local_file(key: str, backup_dir: Path | None, recovery_root: Path | None) -> Path | None:
    """The local file an object was copied from (it may be gone), or None when the key is not ours."""
    parts = keys.split(key)
    if parts is not None:
        kind, backup_id, name = parts
        if kind + "/" == keys.DUMPS:
            return Path(backup_dir) / backup_id / name if backup_dir is not None else None
        return Path(recovery_root) / "base" / backup_id / name if recovery_root is not None else None
    if recovery_root is None:
        return None
    if key.startswith(keys.WAL):
        return Path(recovery_root) / "wal" / key[len(keys.WAL):]
    if key in (keys.ARCHIVE_INFO, keys.RESTORE_POINTS):
        return Path(recovery_root) / key
    return None


def verify(store: ObjectStore, *, backup_dir: Path | None, recovery_root: Path | None, download: bool = False,
           on_progress: Report = quiet) -> Verification:
    """Check every object of the catalogue (see the module docstring). Problems are collected, not raised."""
    catalogue = read(store)
    result = Verification(catalogue.where)
    result.problems += [f"{name}: files without a manifest (an interrupted copy; the next push completes it)"
                        for name in catalogue.incomplete]
    for key in sorted(catalogue.objects):
        result.checked += 1
        on_progress("verify off the machine", result.checked, len(catalogue.objects), "objects")
        local = local_file(key, backup_dir, recovery_root)
        mutable = key in (keys.ARCHIVE_INFO, keys.RESTORE_POINTS)  # rewritten locally: compared with itself only
        try:
            if local is not None and local.is_file() and not download and not mutable:
                head = store.head(key)
                if head is None:
                    result.problems.append(f"{key}: gone while being checked")
                    continue
                size = local.stat().st_size
                problems = _problems(head, checksums.of_file(local, _part_size_of(head, size)))
                result.against_local += 1
            else:
                sha256, size, (recorded_sha, recorded_size) = store.read_back(key)
                problems = [] if (sha256, size) == (recorded_sha, recorded_size) else [
                    f"holds sha256 {sha256} ({size} bytes), recorded at upload {recorded_sha} ({recorded_size} bytes)"]
                result.read_back += 1
                result.bytes_read_back += size
        except (OffsiteCorrupt, OffsiteMissing) as exc:  # a finding; an unreachable store or bad credentials raise
            problems = [str(exc)]
        result.problems += [f"{key}: {problem}" for problem in problems]
    return result
