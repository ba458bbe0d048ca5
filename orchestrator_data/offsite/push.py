"""Copying the local backups off the machine: what is not yet in the bucket goes up, verified; what is
there with the same checksum is skipped (a re-run copies nothing twice).

Order, so that the bucket is restorable at every moment: the archive's description and its completed WAL
first, then the base backups (each one's files, its manifest.json last), then the logical dumps (the
same), then the restore points. A base backup in the bucket therefore always finds the WAL that makes it
consistent (a base backup is complete locally only once the archive holds its end). The segment still
being written (`.partial`) never leaves the machine: the copy off the machine is behind the local archive
by that segment and the time until the next push."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orchestrator_data.offsite import keys
from orchestrator_data.offsite.store import ObjectStore, Transfer
from orchestrator_data.progress import Report, quiet

KINDS = ("wal", "base", "dumps")


@dataclass
class PushReport:
    where: str
    uploaded: list[Transfer] = field(default_factory=list)
    skipped: list[Transfer] = field(default_factory=list)
    dumps: list[str] = field(default_factory=list)          # ids now in the bucket (copied or already there)
    base_backups: list[str] = field(default_factory=list)
    wal_files: int = 0
    held_back: list[str] = field(default_factory=list)       # plaintext WAL waiting to be sealed by the archiver
    finished_at: datetime | None = None
    duration_s: float = 0.0
    bucket_objects: int = 0                                   # the bucket's side after the push
    bucket_bytes: int = 0
    newest_copy_at: datetime | None = None

    @property
    def bytes_uploaded(self) -> int:
        return sum(t.size for t in self.uploaded)

    def as_dict(self) -> dict:
        return {"where": self.where, "uploaded": len(self.uploaded), "skipped": len(self.skipped),
                "bytes_uploaded": self.bytes_uploaded, "dumps": self.dumps, "base_backups": self.base_backups,
                "wal_files": self.wal_files, "held_back": self.held_back,
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "duration_s": self.duration_s, "bucket_objects": self.bucket_objects,
                "bucket_bytes": self.bucket_bytes,
                "newest_copy_at": self.newest_copy_at.isoformat() if self.newest_copy_at else None,
                "objects": [{"key": t.key, "size": t.size, "sha256": t.sha256,
                             "action": "uploaded" if t.done else "already there"}
                            for t in self.uploaded + self.skipped]}


def push(store: ObjectStore, *, backup_dir: Path | None, recovery_root: Path | None,
         encrypted_wal_only: bool = False, dump_ids: list[str] | None = None,
         base_ids: list[str] | None = None, on_progress: Report = quiet) -> PushReport:
    """Copy the dumps of `backup_dir` and the recovery chain of `recovery_root` (either None: not that
    part). `dump_ids`/`base_ids`: only those (None: all). `encrypted_wal_only`: a key is configured, so a
    plaintext completed segment is about to be sealed by the archiver; it waits for the sealed copy
    rather than leaving the machine in the clear."""
    started = time.monotonic()
    report = PushReport(store.config.where)
    store.check_bucket()

    def copy(path: Path, key: str, sha256: str | None = None) -> None:
        transfer = store.upload(path, key, sha256=sha256)
        (report.uploaded if transfer.done else report.skipped).append(transfer)
        on_progress("copy off the machine", len(report.uploaded) + len(report.skipped), None, "files")

    if recovery_root is not None:
        _push_chain(store, Path(recovery_root), copy, report, encrypted_wal_only, base_ids)
    if backup_dir is not None:
        from orchestrator_data.backups import list_backups

        for entry in sorted(list_backups(backup_dir), key=lambda e: (e.created_at, e.id)):
            if dump_ids is not None and entry.id not in dump_ids:
                continue
            copy(entry.dump_path, keys.dump(entry.id, entry.dump_path.name), entry.sha256)
            copy(entry.path / keys.MANIFEST, keys.dump(entry.id, keys.MANIFEST))  # last: the dump is listed now
            report.dumps.append(entry.id)
    if recovery_root is not None:
        points = Path(recovery_root) / keys.RESTORE_POINTS
        if points.is_file():
            copy(points, keys.RESTORE_POINTS)
    from orchestrator_data.offsite import catalogue

    after = catalogue.read(store)
    report.bucket_objects, report.bucket_bytes = len(after.objects), after.total_bytes
    report.newest_copy_at = after.newest_copy_at
    report.finished_at = datetime.now(UTC)
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def _push_chain(store: ObjectStore, root: Path, copy, report: PushReport, encrypted_wal_only: bool,
                base_ids: list[str] | None) -> None:
    from orchestrator_data.recovery.base_backups import list_base_backups
    from orchestrator_data.recovery.layout import Layout
    from orchestrator_data.recovery.wal import list_archive

    layout = Layout(root)
    info = layout.read_archive_info()
    if info is None:
        return  # no archive yet: nothing of the chain to copy
    copy(layout.archive_info, keys.ARCHIVE_INFO)
    digests = DigestCache(layout.wal / DIGEST_CACHE)
    for item in list_archive(layout.wal, int(info["segment_size"])):
        if item.partial:
            continue
        if encrypted_wal_only and not item.encrypted:
            report.held_back.append(item.path.name)
            continue
        try:
            copy(item.path, keys.wal(item.path.name), digests.of(item.path))
        except FileNotFoundError:
            continue  # sealed (or pruned) since it was listed: its sealed copy goes up next time
        report.wal_files += 1
    digests.save()
    for backup in list_base_backups(layout):
        if base_ids is not None and backup.id not in base_ids:
            continue
        for path in sorted(backup.path.iterdir()):
            if path.name.startswith(".") or path.name == keys.MANIFEST or not path.is_file():
                continue
            copy(path, keys.base(backup.id, path.name), backup.sha256 if path == backup.data_file else None)
        copy(backup.path / keys.MANIFEST, keys.base(backup.id, keys.MANIFEST))
        report.base_backups.append(backup.id)


DIGEST_CACHE = ".offsite-sha256.json"  # a dot name: the WAL listing ignores it


class DigestCache:
    """sha256 of the archive's WAL files by name, size and mtime, kept beside them: a push every 15
    minutes would otherwise read the whole window of WAL (thousands of segments) to learn that nothing
    changed. A file whose size or mtime differ is hashed again; entries of files gone are dropped."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.known = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            self.known = {}
        self.used: dict[str, list] = {}

    def of(self, path: Path) -> str:
        stat = path.stat()
        entry = self.known.get(path.name)
        if not (isinstance(entry, list) and entry[:2] == [stat.st_size, stat.st_mtime_ns]):
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while data := f.read(1 << 20):
                    digest.update(data)
            entry = [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]
        self.used[path.name] = entry
        return entry[2]

    def save(self) -> None:
        if self.used != self.known and self.path.parent.is_dir():
            from orchestrator_data.stack.common import write_atomically

            write_atomically(self.path, json.dumps(self.used), mode=0o600)

