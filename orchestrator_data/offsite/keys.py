"""Where each local file goes in the bucket, below OFFSITE_PREFIX: the same names as on disk.

    dumps/<id>/dump.pgc[.enc]           a logical dump (BACKUP_DIR/<id>/), its manifest.json written last
    dumps/<id>/manifest.json
    base/<id>/base.tar[.enc]            a base backup (RECOVERY_DIR/base/<id>/), its manifest.json written last
    base/<id>/backup_manifest[.enc]
    base/<id>/manifest.json
    wal/<segment>[.<key id>.enc]        completed WAL segments and timeline history files (never a .partial)
    archive.json                        the cluster the WAL archive belongs to
    restore_points.jsonl                the named restore points

A dump or base backup is listed only once its manifest.json is there, and the manifest goes up after
every other file of it: a listing never shows a backup without its manifest, nor a manifest without
its files."""

from __future__ import annotations

DUMPS = "dumps/"
BASE = "base/"
WAL = "wal/"
MANIFEST = "manifest.json"
ARCHIVE_INFO = "archive.json"
RESTORE_POINTS = "restore_points.jsonl"


def dump(backup_id: str, name: str) -> str:
    return f"{DUMPS}{backup_id}/{name}"


def base(backup_id: str, name: str) -> str:
    return f"{BASE}{backup_id}/{name}"


def wal(name: str) -> str:
    return f"{WAL}{name}"


def split(key: str) -> tuple[str, str, str] | None:
    """(kind, id, file name) of a dump's or base backup's key: ("dumps", id, name); None otherwise."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] + "/" in (DUMPS, BASE) and parts[1] and parts[2]:
        return parts[0], parts[1], parts[2]
    return None
