"""PostgreSQL backups as assets: a backup, a restore check of the newest one, and their freshness.

Thin: `orchestrator_data.backups` does the work (pg_dump with a manifest of per-table checksums,
encryption, restore into a scratch database) — the same code the CLI runs. The backup directory and
key come from the settings at run time, so the key never appears in the UI or in metadata.
"""

# no `from __future__ import annotations`: Dagster reads the context annotation at definition time
import time
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from orchestrator_data import backups
from orchestrator_data.redaction import redact
from orchestrator_data.settings import Settings, load_settings
from resources import PostgresResource

TABLE_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("table", "string"),
    dg.TableColumn("rows", "int"),
    dg.TableColumn("checksum", "string", description="checksum of the table's rows in the snapshot (first 16 hex digits)"),
])
DIFFERENCES_SHOWN = 10


def backup_settings() -> tuple[Path, bytes | None, float]:
    """BACKUP_DIR, the decoded BACKUP_ENCRYPTION_KEY (None: unencrypted) and the age policy in hours."""
    settings: Settings = load_settings()
    return Path(settings.backup_dir), settings.backup_key_bytes, settings.backup_max_age_hours


def _tables(manifest: dict) -> list[dict]:
    """Per-table rows and checksums from the manifest, whichever shape it keeps them in."""
    tables = manifest.get("tables") or []
    if isinstance(tables, dict):
        tables = [{"table": name, **(value if isinstance(value, dict) else {"rows": value})}
                  for name, value in tables.items()]
    return [{"table": str(t.get("table") or t.get("name")), "rows": int(t.get("rows") or 0),
             "checksum": str(t.get("checksum") or "")[:16]} for t in tables]


def backup_metadata(entry: "backups.BackupEntry") -> dict:
    tables = _tables(entry.manifest)
    return {
        "backup_id": entry.id,
        "size_bytes": entry.size_bytes,
        "sha256": entry.sha256,
        "duration_s": dg.MetadataValue.float((entry.finished_at - entry.created_at).total_seconds()),
        "server_version": entry.server_version,
        "migration_head": entry.migration_head or "none",
        "encrypted": entry.encrypted,
        "compressed": entry.compressed,
        "path": dg.MetadataValue.path(str(entry.path)),
        "tables": dg.MetadataValue.table(records=[dg.TableRecord(t) for t in tables], schema=TABLE_COLUMNS),
        "dagster/row_count": sum(t["rows"] for t in tables),
    }


@dg.asset(
    group_name="backups",
    kinds={"postgres"},
    owners=["team:data-platform"],
    deps=["postgres_schema"],
    description="A snapshot-consistent pg_dump of the application database in BACKUP_DIR, with a manifest of "
                "per-table row counts and checksums; encrypted at rest when BACKUP_ENCRYPTION_KEY is set. "
                "Metadata: id, size, sha256, duration, server version, migration head, rows per table.",
)
def postgres_backup(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    backup_dir, key, _ = backup_settings()
    try:
        entry = backups.create_backup(postgres.url(), backup_dir, encryption_key=key)
    except backups.BackupError as exc:
        raise dg.Failure(description=redact(str(exc))) from None
    context.log.info(f"backup {entry.id}: {entry.size_bytes} bytes")
    return dg.MaterializeResult(metadata=backup_metadata(entry))


@dg.asset(
    group_name="backups",
    kinds={"postgres"},
    owners=["team:data-platform"],
    deps=["postgres_backup"],
    description="Restores the newest backup into a scratch database and compares row counts and checksums "
                "per table with its manifest; fails listing the first differences. Metadata: RTO (seconds "
                "to restore and compare), size, differences.",
)
def postgres_restore_check(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    backup_dir, key, _ = backup_settings()
    try:
        entry = backups.get_backup(backup_dir, "latest")
        started = time.monotonic()
        result = backups.restore_check(postgres.url(), backup_dir, entry.id, encryption_key=key)
    except backups.BackupError as exc:
        raise dg.Failure(description=redact(str(exc))) from None
    differences = [redact(str(d)) for d in (result.differences or [])]
    duration = result.duration_s if result.duration_s is not None else time.monotonic() - started
    # RTO: how long getting the data back takes (pg_restore), apart from the comparison afterwards
    rto = result.restore_duration_s if result.restore_duration_s is not None else duration
    metadata = {
        "backup_id": entry.id,
        "rto_seconds": dg.MetadataValue.float(float(rto)),
        "check_duration_s": dg.MetadataValue.float(float(duration)),
        "stage": result.stage,
        "tables_compared": result.tables_compared,
        "restored_size_bytes": result.restored_size_bytes or 0,
        "size_bytes": entry.size_bytes,
        "difference_count": len(differences),
        "differences": dg.MetadataValue.md("\n".join(f"- {d}" for d in differences[:50]) or "none"),
        "ok": bool(result.ok),
    }
    if not result.ok:
        shown = "; ".join(differences[:DIFFERENCES_SHOWN]) or "restore failed"
        raise dg.Failure(description=f"restore check of {entry.id} failed: {shown}", metadata=metadata)
    context.log.info(f"restore check of {entry.id} passed in {duration:.1f} s")
    return dg.MaterializeResult(metadata=metadata)


def backup_age_hours(entry: "backups.BackupEntry | None", now: datetime | None = None) -> float | None:
    if entry is None:
        return None
    now = now or datetime.now(timezone.utc)
    return (now - entry.created_at).total_seconds() / 3600


@dg.asset_check(asset=postgres_restore_check,
                description="The newest backup whose restore check passed is younger than BACKUP_MAX_AGE_HOURS "
                            "(default 26: a nightly backup plus slack).")
def check_postgres_backup_freshness() -> dg.AssetCheckResult:
    backup_dir, _, max_age = backup_settings()
    entry = backups.latest_verified(backup_dir)
    age = backup_age_hours(entry)
    return dg.AssetCheckResult(
        passed=age is not None and age <= max_age,
        metadata={"latest_verified_id": entry.id if entry else "none",
                  "age_hours": dg.MetadataValue.float(age if age is not None else -1.0),
                  "max_age_hours": dg.MetadataValue.float(max_age)},
    )


BACKUP_ASSETS = [postgres_backup, postgres_restore_check]
BACKUP_ASSET_CHECKS = [check_postgres_backup_freshness]
