"""The restore check: prove a backup restores and holds exactly what its manifest says.

Order: key id, then sha256 of the stored file (a corrupted file fails here, before any database is
created), then decrypt (authenticating every chunk) to a temp file, pg_restore into a scratch
database with a fresh name, compare every table's row count and checksum and the migration head
with the manifest, re-apply the GDPR erasure ledgers (the live database's, and the ledger file kept
outside the database: docs/gdpr.md) and prove no erased user is left, and drop the scratch database
in all cases.

The manifest describes the backup as it was taken, so the comparison reads the restored database
before the ledger changes it: that proves the backup. The ledger is applied afterwards — a backup
taken before an erasure still holds the person until retention drops it, and any database restored
from it must not bring them back — and its own check is that no user the ledger names is left.

pg_restore runs with --no-owner --no-acl --exit-on-error: ownership and GRANTs name cluster roles and
the restoring login (the stack's superuser, or a login with CREATEDB) need not be able to become
them, and neither changes a row. Row-level security policies are restored (they are part of the
schema, and name the cluster's orchestrator_* roles, which must exist — revision 0002 creates them);
the comparison then reads as the restoring login, which owns the restored tables (--no-owner) and,
as a superuser, bypasses the policies, so every row is counted."""

from __future__ import annotations

import logging
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from psycopg import sql

from orchestrator_data import urls
from orchestrator_data.backups import _pg, workdirs
from orchestrator_data.backups.catalog import (
    VERIFICATION,
    BackupCorrupt,
    BackupEntry,
    BackupToolError,
    get_backup,
    record_integrity,
    write_json_atomic,
)
from orchestrator_data.backups.create import file_sha256, key_for, key_ring
from orchestrator_data.backups.keys import KeyRing
from orchestrator_data.backups.crypto import decrypt_file
from orchestrator_data.progress import Report, quiet

log = logging.getLogger(__name__)
SCRATCH_PREFIX = "restore_check_"
MAX_DIFFERENCES = 20


@dataclass
class RestoreCheckResult:
    backup_id: str
    ok: bool
    stage: str                     # where it ended: "integrity", "restore", "compare", "erasures" or "done"
    checked_at: datetime
    duration_s: float              # the whole check
    restore_duration_s: float | None   # pg_restore alone: the recovery time (RTO) of this backup
    restored_size_bytes: int | None    # pg_database_size of the restored database
    tables_compared: int
    scratch_database: str | None
    differences: list[str] = field(default_factory=list)  # the first differences (at most 20)
    erasures_reapplied: int = 0    # entries of the live erasure ledger applied after the comparison

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["checked_at"] = self.checked_at.isoformat()
        return d


def scratch_name(backup_id: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in backup_id.lower())
    return f"{SCRATCH_PREFIX}{safe}_{secrets.token_hex(4)}"[:63]


def restore_check(database_url: str, backup_dir: Path, backup_id: str, *,
                  encryption_key: bytes | None = None, keys: KeyRing | None = None,
                  erasure_ledger: Path | None = None, on_progress: Report = quiet) -> RestoreCheckResult:
    """Restore `backup_id` ("latest" allowed) into a scratch database on the server of database_url and
    compare it with the manifest. Returns the result (ok False with the differences on a corrupt file,
    a failed restore or a mismatch) and records it in verification.json. An encrypted backup is read
    with the key of its manifest's key_id from `keys` (the key ring), or with `encryption_key`.
    `erasure_ledger`: the GDPR ledger file (GDPR_LEDGER_FILE), re-applied with the live database's. Raises
    BackupNotFound, BackupKeyError (no key, or none with that id) and BackupToolError (pg_restore older
    than the pg_dump)."""
    entry = get_backup(backup_dir, backup_id)
    manifest = entry.manifest
    encryption_key = key_for(entry, key_ring(encryption_key, keys), required=True)
    restore_version = _pg.tool_version("pg_restore")
    dump_version = manifest.get("pg_dump_version", "0")
    if _pg.version_tuple(restore_version) < _pg.version_tuple(dump_version):
        raise BackupToolError(f"pg_restore {restore_version} is older than the pg_dump {dump_version} that wrote "
                              f"backup {entry.id}; restore it with pg_restore {dump_version} or newer")
    started = time.perf_counter()
    checked_at = datetime.now(UTC)

    def finish(ok: bool, stage: str, differences: list[str], **extra) -> RestoreCheckResult:
        result = RestoreCheckResult(
            backup_id=entry.id, ok=ok, stage=stage, checked_at=checked_at,
            duration_s=round(time.perf_counter() - started, 3),
            restore_duration_s=extra.get("restore_duration_s"), restored_size_bytes=extra.get("restored_size_bytes"),
            tables_compared=extra.get("tables_compared", 0), scratch_database=extra.get("scratch_database"),
            differences=differences[:MAX_DIFFERENCES], erasures_reapplied=extra.get("erasures_reapplied", 0),
        )
        _record(entry, result)
        return result

    try:
        path = entry.dump_path
    except BackupCorrupt as exc:
        record_integrity(entry.path, False, None)
        return finish(False, "integrity", [str(exc)])
    if not path.is_file():
        record_integrity(entry.path, False, None)
        return finish(False, "integrity", [f"dump file {path.name} is missing"])
    actual, size = file_sha256(path, on_progress)
    record_integrity(entry.path, actual == entry.sha256 and size == entry.size_bytes, actual)
    if actual != entry.sha256 or size != entry.size_bytes:
        return finish(False, "integrity", [f"stored file does not match the manifest: sha256 {actual} "
                                           f"({size} bytes), expected {entry.sha256} ({entry.size_bytes} bytes)"])

    # temp files live beside the backups ("." names are never listed): /tmp may be too small for a dump
    # locked while in use, so `prune` removes it only when a killed check left it behind
    with tempfile.TemporaryDirectory(prefix=workdirs.RESTORE_PREFIX, dir=Path(backup_dir)) as tmp, \
            workdirs.in_use(Path(tmp)):
        archive = path
        if entry.encrypted:
            archive = Path(tmp) / "dump.pgc"
            try:
                decrypt_file(path, archive, encryption_key)
            except BackupCorrupt as exc:
                record_integrity(entry.path, False, actual)
                return finish(False, "integrity", [str(exc)])
        name = scratch_name(entry.id)
        _create_database(database_url, name)
        try:
            scratch_url = urls.replace_database(database_url, name)
            restore_started = time.perf_counter()
            error = _pg_restore(scratch_url, archive, len(manifest.get("tables") or {}), on_progress)
            restore_s = round(time.perf_counter() - restore_started, 3)
            if error:
                return finish(False, "restore", [error], restore_duration_s=restore_s, scratch_database=name)
            with _pg.connect(scratch_url, autocommit=True) as conn:
                tables = _pg.table_checksums(conn, on_progress, "compare")
                head = _pg.migration_head(conn)
                restored_size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            differences = compare(manifest, tables, head)
            if differences:
                return finish(False, "compare", differences, restore_duration_s=restore_s,
                              restored_size_bytes=int(restored_size), tables_compared=len(tables),
                              scratch_database=name)
            reapplied = _reapply_erasures(database_url, scratch_url, erasure_ledger)
            return finish(not reapplied.differences, "done" if not reapplied.differences else "erasures",
                          reapplied.differences, restore_duration_s=restore_s,
                          restored_size_bytes=int(restored_size), tables_compared=len(tables),
                          scratch_database=name, erasures_reapplied=reapplied.erasures)
        finally:
            _drop_database(database_url, name)


def _reapply_erasures(database_url: str, scratch_url: str, erasure_ledger: Path | None):
    from orchestrator_data.gdpr.erase import reapply_after_restore
    from orchestrator_data.gdpr.ledger import ErasureLedger
    from orchestrator_data.gdpr.reapply import ledger_entries_as_rows
    from orchestrator_data.postgres.client import engine_for

    outside = ledger_entries_as_rows(ErasureLedger(erasure_ledger).read().entries) if erasure_ledger else []
    with engine_for(database_url, "orchestrator-data-restore-check") as live, \
            engine_for(scratch_url, "orchestrator-data-restore-check") as restored:
        return reapply_after_restore(live, restored, outside)


def compare(manifest: dict, tables: dict[str, dict], head: str | None) -> list[str]:
    """Differences between the manifest and what was restored, in a stable order."""
    differences = []
    if head != manifest.get("migration_head"):
        differences.append(f"migration head: restored {head!r}, manifest {manifest.get('migration_head')!r}")
    expected = manifest.get("tables", {})
    for name in sorted(set(expected) | set(tables)):
        want, got = expected.get(name), tables.get(name)
        if got is None:
            differences.append(f"table {name}: missing from the restored database")
        elif want is None:
            differences.append(f"table {name}: restored but not in the manifest")
        else:
            if got["rows"] != want["rows"]:
                differences.append(f"table {name}: {got['rows']} rows restored, manifest says {want['rows']}")
            if got["checksum"] != want["checksum"]:
                differences.append(f"table {name}: checksum {got['checksum']} restored, manifest says {want['checksum']}")
    return differences


def _pg_restore(scratch_url: str, archive: Path, tables: int, on_progress: Report = quiet) -> str | None:
    """pg_restore, its --verbose lines counted as progress: one 'processing data for table' per table."""
    url, password = _pg.split_password(scratch_url)
    args = [str(_pg.tool("pg_restore")), "--no-owner", "--no-acl", "--exit-on-error", "--no-password", "--verbose",
            f"--dbname={url}", str(archive)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=_pg.tool_env(password), preexec_fn=_pg.dies_with_parent())
    lines: list[str] = []
    restored = 0
    on_progress("restore", 0, tables, "tables")
    try:
        for line in process.stderr:
            lines.append(line)
            if "processing data for table" in line:
                restored += 1
                on_progress("restore", min(restored, tables), tables, "tables")
        returncode = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    if returncode != 0:
        # --verbose lines say what it was doing; the error is in the last ones
        errors = [line for line in lines if "error" in line.lower()] or lines
        return f"pg_restore failed (exit {returncode}): {_pg.stderr_tail(''.join(errors[-20:]))}"
    on_progress("restore", tables, tables, "tables")
    return None


def _create_database(database_url: str, name: str) -> None:
    with _pg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))


def _drop_database(database_url: str, name: str) -> None:
    # WITH (FORCE): a connection left open by a failed step must not keep the scratch database alive
    with _pg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _record(entry: BackupEntry, result: RestoreCheckResult) -> None:
    write_json_atomic(entry.path / VERIFICATION, {
        "ok": result.ok, "checked_at": result.checked_at.isoformat(), "duration_s": result.duration_s,
        "restore_duration_s": result.restore_duration_s, "restored_size_bytes": result.restored_size_bytes,
        "stage": result.stage, "tables_compared": result.tables_compared, "differences": result.differences,
        "erasures_reapplied": result.erasures_reapplied,
    })
    if not result.ok:
        log.warning("restore check of %s failed at %s: %s", entry.id, result.stage, "; ".join(result.differences[:3]))
