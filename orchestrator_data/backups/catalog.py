"""The backup catalogue: one directory per backup under BACKUP_DIR, found by its manifest.

    BACKUP_DIR/<id>/manifest.json      what was dumped (written last, inside a temp dir)
    BACKUP_DIR/<id>/dump.pgc[.enc]     pg_dump -Fc output, encrypted when a key was given
    BACKUP_DIR/<id>/integrity.json     the latest sha256 re-check of the stored file (written right
                                       after the backup, and by verify and restore_check)
    BACKUP_DIR/<id>/verification.json  the latest restore check (written by restore_check)

A backup is assembled in BACKUP_DIR/.tmp-<id>/ and renamed into place when complete, so a
half-written backup is never listed (names starting with "." are ignored)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestrator_data.errors import BadInput, OperationFailed

MANIFEST = "manifest.json"
VERIFICATION = "verification.json"
INTEGRITY = "integrity.json"
MANIFEST_FORMAT = 1
# BACKUP_DIR/recovery is the physical chain's default home (RECOVERY_DIR): not a logical dump
RECOVERY_SUBDIR = "recovery"


class BackupError(OperationFailed):
    """Base of every backup error; messages never contain a password or a key."""


class BackupNotFound(BackupError, BadInput):
    pass


class BackupKeyError(BackupError, BadInput):
    """No key, a malformed key, or a key that is not the one the backup was encrypted with."""


class BackupCorrupt(BackupError):
    """The stored file does not match its manifest (hash, size, or an encrypted chunk fails to authenticate)."""


class BackupToolError(BackupError):
    """pg_dump/pg_restore failed, or is too old for the archive."""


@dataclass
class BackupEntry:
    id: str                 # e.g. "20261125T150102Z-3f2a" (sortable UTC time + short random)
    path: Path              # the backup's directory: BACKUP_DIR/<id>/
    created_at: datetime    # tz-aware UTC (snapshot start)
    finished_at: datetime
    size_bytes: int         # of the dump file as stored
    sha256: str             # of the dump file as stored
    encrypted: bool
    compressed: bool
    server_version: str
    migration_head: str | None
    verified_at: datetime | None     # time of the latest sha256 re-check of the stored file
    verified_ok: bool | None         # its result (None = never checked)
    restore_checked_at: datetime | None  # time of the latest restore check
    restore_check_ok: bool | None        # its result (None = never checked)

    @property
    def manifest(self) -> dict:
        return read_json(self.path / MANIFEST)

    @property
    def dump_path(self) -> Path:
        """The dump file the manifest names. Raises BackupCorrupt if it is not a file of this directory."""
        return contained_file(self.path, self.manifest.get("file"))

    def as_dict(self) -> dict:
        return {
            "id": self.id, "path": str(self.path), "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat(), "size_bytes": self.size_bytes, "sha256": self.sha256,
            "encrypted": self.encrypted, "compressed": self.compressed, "server_version": self.server_version,
            "migration_head": self.migration_head,
            "verified_at": self.verified_at.isoformat() if self.verified_at else None,
            "verified_ok": self.verified_ok,
            "restore_checked_at": self.restore_checked_at.isoformat() if self.restore_checked_at else None,
            "restore_check_ok": self.restore_check_ok,
        }


def contained_file(directory: Path, name: object) -> Path:
    """`directory / name` for a plain file name of that directory. A manifest is data that may have
    been edited: a separator, "..", an absolute path or a symlink that resolves elsewhere would make
    verify and restore read (and vouch for) any file on the machine, so they make the backup corrupt."""
    plain = (isinstance(name, str) and name not in ("", ".", "..") and "\0" not in name
             and "/" not in name and "\\" not in name and Path(name).name == name)
    if not plain:
        raise BackupCorrupt(f"manifest names the dump file {name!r}: not a plain file name inside the backup directory")
    path = directory / name
    if path.is_symlink() and path.resolve().parent != directory.resolve():
        raise BackupCorrupt(f"dump file {name!r} is a symlink that leads outside the backup directory")
    return path


def new_backup_id(now: datetime | None = None) -> str:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write then rename, so a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _check_record(path: Path) -> tuple[datetime | None, bool | None]:
    """(checked_at, ok) of a check record; (None, None) when there is none."""
    if not path.exists():
        return None, None
    try:
        record = read_json(path)
        return utc(record["checked_at"]), bool(record["ok"])
    except (ValueError, KeyError, TypeError, OSError):
        return None, False  # unreadable record: treat as failed


def record_integrity(path: Path, ok: bool, sha256: str | None, checked_at: datetime | None = None) -> None:
    """Record a sha256 re-check of the stored file in BACKUP_DIR/<id>/integrity.json."""
    write_json_atomic(path / INTEGRITY, {"ok": ok, "sha256": sha256,
                                         "checked_at": (checked_at or datetime.now(UTC)).isoformat()})


def entry_from_dir(path: Path) -> BackupEntry:
    manifest = read_json(path / MANIFEST)
    verified_at, verified_ok = _check_record(path / INTEGRITY)
    restore_checked_at, restore_check_ok = _check_record(path / VERIFICATION)
    return BackupEntry(
        id=manifest["id"], path=path, created_at=utc(manifest["created_at"]),
        finished_at=utc(manifest["finished_at"]), size_bytes=int(manifest["size_bytes"]),
        sha256=manifest["sha256"], encrypted=manifest.get("encryption") is not None,
        compressed=bool(manifest.get("compression", {}).get("enabled")),
        server_version=manifest["server_version"], migration_head=manifest.get("migration_head"),
        verified_at=verified_at, verified_ok=verified_ok,
        restore_checked_at=restore_checked_at, restore_check_ok=restore_check_ok,
    )


def list_backups(backup_dir: Path) -> list[BackupEntry]:
    """Every complete backup, newest first. Temp dirs and dirs without a readable manifest are ignored."""
    backup_dir = Path(backup_dir)
    if not backup_dir.is_dir():
        return []
    entries = []
    for child in backup_dir.iterdir():
        if child.name.startswith(".") or child.name == RECOVERY_SUBDIR or not child.is_dir() \
                or not (child / MANIFEST).is_file():
            continue
        try:
            entries.append(entry_from_dir(child))
        except (ValueError, KeyError, TypeError, OSError):
            continue
    entries.sort(key=lambda e: (e.created_at, e.id), reverse=True)
    return entries


def get_backup(backup_dir: Path, backup_id: str) -> BackupEntry:
    """One backup by id, or the newest for "latest". Raises BackupNotFound."""
    if backup_id == "latest":
        entries = list_backups(backup_dir)
        if not entries:
            raise BackupNotFound(f"no backups in {backup_dir}")
        return entries[0]
    # an id is a plain name: never let it walk out of BACKUP_DIR
    if not backup_id or "/" in backup_id or backup_id.startswith(".") or backup_id != Path(backup_id).name:
        raise BackupNotFound(f"no backup {backup_id!r} in {backup_dir}")
    path = Path(backup_dir) / backup_id
    if not (path / MANIFEST).is_file():
        raise BackupNotFound(f"no backup {backup_id!r} in {backup_dir}")
    try:
        return entry_from_dir(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupNotFound(f"backup {backup_id!r} has an unreadable manifest ({type(exc).__name__})") from None


def latest_verified(backup_dir: Path) -> BackupEntry | None:
    """The newest backup whose latest sha256 re-check passed."""
    return next((e for e in list_backups(backup_dir) if e.verified_ok is True), None)


def latest_restore_checked(backup_dir: Path) -> BackupEntry | None:
    """The newest backup whose latest restore check passed."""
    return next((e for e in list_backups(backup_dir) if e.restore_check_ok is True), None)


def table_summary(manifest: dict) -> list[dict]:
    """Per-table rows and checksum (first 16 hex digits) from a manifest, whichever shape it keeps them in."""
    tables = manifest.get("tables") or []
    if isinstance(tables, dict):
        tables = [{"table": name, **(value if isinstance(value, dict) else {"rows": value})}
                  for name, value in tables.items()]
    return [{"table": str(t.get("table") or t.get("name")), "rows": int(t.get("rows") or 0),
             "checksum": str(t.get("checksum") or "")[:16]} for t in tables]
