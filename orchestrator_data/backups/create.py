"""Taking a backup (create_backup) and checking a stored one without restoring it (verify_backup)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from orchestrator_data import urls
from orchestrator_data.backups import _pg, workdirs
from orchestrator_data.backups.catalog import (
    MANIFEST,
    MANIFEST_FORMAT,
    BackupCorrupt,
    BackupEntry,
    BackupError,
    BackupKeyError,
    BackupToolError,
    entry_from_dir,
    get_backup,
    new_backup_id,
    record_integrity,
    write_json_atomic,
)
from orchestrator_data.backups.crypto import ALGORITHM, CHUNK_SIZE, decrypt_file, encrypt_stream, key_id
from orchestrator_data.backups.keys import KeyRing
from orchestrator_data.progress import Report, quiet

log = logging.getLogger(__name__)
PLAIN_FILE = "dump.pgc"
ENCRYPTED_FILE = "dump.pgc.enc"
_COPY_CHUNK = 1 << 20


def create_backup(database_url: str, backup_dir: Path, *, encryption_key: bytes | None = None,
                  keys: KeyRing | None = None, compress: bool = True, on_progress: Report = quiet) -> BackupEntry:
    """pg_dump -Fc of the database inside an exported snapshot, with row counts and checksums of every
    table in public computed inside that same snapshot, stored as BACKUP_DIR/<id>/ (atomically).
    Encrypted with `encryption_key`, or with the current key of `keys` (the key ring)."""
    if keys is not None and keys.current is not None:
        encryption_key = keys.current.material
    if encryption_key is not None and len(encryption_key) != 32:
        raise BackupKeyError("the encryption key must be 32 bytes")
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    dump_version = _pg.tool_version("pg_dump")
    created_at = datetime.now(UTC)
    backup_id = new_backup_id(created_at)
    tmp = backup_dir / f"{workdirs.BACKUP_PREFIX}{backup_id}"
    tmp.mkdir()
    try:
        with workdirs.in_use(tmp):  # so `prune` tells it from the temp dir of a killed backup
            manifest = _dump(database_url, tmp, backup_id, created_at, dump_version, encryption_key, compress,
                             on_progress)
            write_json_atomic(tmp / MANIFEST, manifest)
            final = backup_dir / backup_id
            tmp.rename(final)  # the backup appears complete or not at all
    except BaseException:  # also an interruption (KeyboardInterrupt, the CLI's SIGTERM): nothing half-written
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("backup %s written: %d bytes", backup_id, manifest["size_bytes"])
    # read back what landed on disk: a backup counts as verified only once its stored bytes hash right
    actual, size = file_sha256(final / manifest["file"], on_progress, "read back")
    ok = actual == manifest["sha256"] and size == manifest["size_bytes"]
    record_integrity(final, ok, actual)
    if not ok:
        raise BackupCorrupt(f"backup {backup_id} does not read back as written: sha256 {actual} ({size} bytes), "
                            f"expected {manifest['sha256']} ({manifest['size_bytes']} bytes)")
    return entry_from_dir(final)


def _dump(database_url: str, tmp: Path, backup_id: str, created_at: datetime, dump_version: str,
          key: bytes | None, compress: bool, on_progress: Report = quiet) -> dict:
    url, password = _pg.split_password(database_url)
    file_name = ENCRYPTED_FILE if key else PLAIN_FILE
    started = time.perf_counter()
    with _pg.connect(database_url) as conn:
        # REPEATABLE READ READ ONLY: one snapshot for the whole transaction; exported so pg_dump sees
        # exactly what the checksums below see.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        server_version = _pg.server_version(conn)
        head = _pg.migration_head(conn)
        args = [str(_pg.tool("pg_dump")), "-Fc", f"--snapshot={snapshot}", "--no-password",
                # as the read-only login, policies must apply (its policy shows every row); a
                # superuser bypasses them anyway
                "--enable-row-security", f"--dbname={url}"]
        if not compress:
            args.append("--compress=0")
        digest = hashlib.sha256()
        size = 0
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, env=_pg.tool_env(password),
                                       preexec_fn=_pg.dies_with_parent())
            # The table checksums run on the exporting connection while this thread stores pg_dump's
            # output: both read the same snapshot, and the two costs overlap instead of adding up.
            tables: dict = {}
            failure: list[BaseException] = []

            def checksums() -> None:
                try:
                    tables.update(_pg.table_checksums(conn, on_progress))
                except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                    failure.append(exc)

            # a daemon: if its query cannot be cancelled, an interrupted backup still exits
            worker = threading.Thread(target=checksums, name=f"backup-checksums-{backup_id}", daemon=True)
            worker.start()
            try:
                with open(tmp / file_name, "wb") as out:
                    def stored(data: bytes) -> None:
                        nonlocal size
                        digest.update(data)
                        size += len(data)
                        on_progress("dump", size, None, "bytes")

                    if key:
                        encrypt_stream(process.stdout, out, key, on_bytes=stored)
                    else:
                        while data := process.stdout.read(_COPY_CHUNK):
                            out.write(data)
                            stored(data)
                returncode = process.wait()
            except BaseException:
                # interrupted (a signal, a full disk): stop pg_dump and the checksum queries now,
                # rather than wait for a dump of the whole database that nobody will keep
                process.kill()
                process.wait()
                _cancel_checksums(conn, worker)
                raise
            worker.join()
            if returncode != 0:
                stderr.seek(0)
                raise BackupToolError(f"pg_dump failed (exit {returncode}): "
                                      f"{_pg.stderr_tail(stderr.read().decode(errors='replace'))}")
        if failure:
            raise BackupError(f"table checksums failed: {type(failure[0]).__name__}: {failure[0]}") from failure[0]
        conn.rollback()
    finished_at = datetime.now(UTC)
    return {
        "format": MANIFEST_FORMAT,
        "id": backup_id,
        "file": file_name,
        "created_at": created_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "duration_s": round(time.perf_counter() - started, 3),
        "size_bytes": size,
        "sha256": digest.hexdigest(),
        "database": urls.database_name(database_url),
        "server_version": server_version,
        "migration_head": head,
        "pg_dump_version": dump_version,
        "dump_format": "custom",
        "tables": tables,
        "checksum_method": _pg.CHECKSUM_METHOD,
        "encryption": {"algorithm": ALGORITHM, "key_id": key_id(key), "chunk_size": CHUNK_SIZE} if key else None,
        "compression": {"enabled": compress, "method": "pg_dump -Fc default (gzip)" if compress else "none (-Z 0)"},
    }


def _cancel_checksums(conn: psycopg.Connection, worker: threading.Thread, attempts: int = 20) -> None:
    """Cancel the worker's running query until it gives up (a cancel that lands between two tables'
    queries cancels nothing, hence the loop); bounded, the worker is a daemon thread."""
    for _ in range(attempts):
        if not worker.is_alive():
            return
        with contextlib.suppress(psycopg.Error):
            conn.cancel_safe(timeout=2.0)
        worker.join(0.25)
    log.warning("the table checksums of an interrupted backup did not stop; leaving them to the exit")


@dataclass
class VerifyResult:
    backup_id: str
    ok: bool
    size_ok: bool
    sha256_ok: bool
    expected_sha256: str
    actual_sha256: str | None
    authenticated: bool | None      # encrypted backups: every chunk authenticated (None: not checked/plain)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def file_sha256(path: Path, on_progress: Report = quiet, step: str = "verify") -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    total = path.stat().st_size
    with open(path, "rb") as f:
        while data := f.read(_COPY_CHUNK):
            digest.update(data)
            size += len(data)
            on_progress(step, size, total, "bytes")
    return digest.hexdigest(), size


def key_ring(encryption_key: bytes | None, keys: KeyRing | None) -> KeyRing:
    """The ring a check reads with: the one given, else a ring of the one key given, else an empty one."""
    if keys is not None:
        return keys
    return KeyRing.of(encryption_key) if encryption_key is not None else KeyRing()


def key_for(entry: BackupEntry, keys: KeyRing, *, required: bool) -> bytes | None:
    """The key the manifest's key_id names, found before decrypting anything (None: the backup is not
    encrypted, or the ring is empty and a key is not required). Raises BackupKeyError naming the id."""
    encryption = entry.manifest.get("encryption")
    if not encryption:
        return None
    wanted = encryption["key_id"]
    if not keys.keys:
        if required:
            raise BackupKeyError(f"backup {entry.id} is encrypted (key id {wanted}) and no key is configured; "
                                 "set BACKUP_KEYRING_FILE or BACKUP_ENCRYPTION_KEY to a ring holding that key")
        return None
    if wanted not in keys:
        raise BackupKeyError(f"wrong encryption key for backup {entry.id}: it was encrypted with key id {wanted}, "
                             f"which is not in the key ring ({keys.where()})")
    return keys.get(wanted)


def verify_backup(backup_dir: Path, backup_id: str, *, encryption_key: bytes | None = None,
                  keys: KeyRing | None = None) -> VerifyResult:
    """Re-hash the stored file against the manifest (size and sha256); when encrypted and its key is in
    the ring (`keys`, or the one `encryption_key`), also authenticate every chunk. Raises
    BackupNotFound, or BackupKeyError when the ring lacks the manifest's key id."""
    entry = get_backup(backup_dir, backup_id)
    encryption_key = key_for(entry, key_ring(encryption_key, keys), required=False)
    try:
        path = entry.dump_path
    except BackupCorrupt as exc:
        record_integrity(entry.path, False, None)
        return VerifyResult(entry.id, False, False, False, entry.sha256, None, None, [str(exc)])
    problems: list[str] = []
    if not path.is_file():
        record_integrity(entry.path, False, None)
        return VerifyResult(entry.id, False, False, False, entry.sha256, None, None, [f"dump file {path.name} is missing"])
    actual, size = file_sha256(path)
    size_ok, sha_ok = size == entry.size_bytes, actual == entry.sha256
    if not size_ok:
        problems.append(f"size {size} bytes, manifest says {entry.size_bytes}")
    if not sha_ok:
        problems.append(f"sha256 {actual} does not match the manifest's {entry.sha256}")
    authenticated = None
    if entry.encrypted and encryption_key is not None and sha_ok:
        try:
            decrypt_file(path, None, encryption_key)
            authenticated = True
        except BackupCorrupt as exc:
            authenticated = False
            problems.append(str(exc))
    record_integrity(entry.path, not problems, actual)
    return VerifyResult(entry.id, not problems, size_ok, sha_ok, entry.sha256, actual, authenticated, problems)
