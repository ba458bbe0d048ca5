"""PostgreSQL backups as assets: a backup, a restore check of the newest one, their freshness, and the
pruning of the backups the recovery window no longer needs.

Thin: `orchestrator_data.backups` does the work (pg_dump with a manifest of per-table checksums,
encryption, restore into a scratch database) — the same code the CLI runs. The backup directory and
key ring come from the `backup_storage` resource (BACKUP_DIR, BACKUP_KEYRING_FILE and
BACKUP_ENCRYPTION_KEY unless set on it): metadata names a key by its id, never its value.
"""

# no `from __future__ import annotations`: Dagster reads the context annotation at definition time
import time
from datetime import timedelta

import dagster as dg
from pydantic import Field

from assets import keys, records
from assets._metadata import code_version, with_human_sizes
from assets._runbook import runbook_metadata
from orchestrator_data import backups
from orchestrator_data.backups import catalog, create, restore, retention
from orchestrator_data.backups.freshness import Freshness, restore_check_freshness, verified_freshness
from orchestrator_data.redaction import redact
from orchestrator_data.runbook import described
from orchestrator_data.settings import Settings
from resources import BackupStorageResource, PostgresResource

# The promises as freshness policies, so the asset pages and the asset health show them. At their
# default windows: the checks and the sensor judge the configured BACKUP_MAX_AGE_HOURS and
# RESTORE_CHECK_MAX_AGE_DAYS, which definitions do not read at load time.
BACKUP_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=Settings.model_fields["backup_max_age_hours"].default),
    warn_window=timedelta(hours=Settings.model_fields["backup_max_age_hours"].default - 2))
RESTORE_CHECK_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=Settings.model_fields["restore_check_max_age_days"].default),
    warn_window=timedelta(days=7))

TABLE_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("table", "string"),
    dg.TableColumn("rows", "int"),
    dg.TableColumn("checksum", "string", description="checksum of the table's rows in the snapshot (first 16 hex digits)"),
])
DIFFERENCES_SHOWN = 10


@records.builds(keys.POSTGRES_BACKUP)
def backup_metadata(entry: "backups.BackupEntry", live: records.Live | None = None) -> dict:
    """postgres_backup's metadata (also recorded by `backup create`)."""
    tables = backups.table_summary(entry.manifest)
    return with_human_sizes({
        "backup_id": entry.id,
        "size_bytes": entry.size_bytes,
        "sha256": entry.sha256,
        "duration_s": dg.MetadataValue.float((entry.finished_at - entry.created_at).total_seconds()),
        "server_version": entry.server_version,
        "migration_head": entry.migration_head or "none",
        "encrypted": entry.encrypted,
        # the id is a truncated hash: which key of the ring opens it, never the key
        "encryption_key_id": (entry.manifest.get("encryption") or {}).get("key_id") or "none",
        "compressed": entry.compressed,
        "path": dg.MetadataValue.path(str(entry.path)),
        "tables": dg.MetadataValue.table(records=[dg.TableRecord(t) for t in tables], schema=TABLE_COLUMNS),
        "dagster/row_count": sum(t["rows"] for t in tables),
    })


@dg.asset(
    name=keys.POSTGRES_BACKUP,
    group_name=keys.BACKUPS_GROUP,
    kinds={"postgres"},
    owners=["team:data-platform"],
    # what a backup holds: the schema and the rows seeded into it, so the graph shows what is inside
    deps=[keys.POSTGRES_SCHEMA, keys.SEED_DATA],
    code_version=code_version(create, catalog),
    freshness_policy=BACKUP_FRESHNESS,
    description="A snapshot-consistent pg_dump of the application database in BACKUP_DIR, with a manifest of "
                "per-table row counts and checksums; encrypted at rest with the key ring's current key when there is one. "
                "Metadata: id, size, sha256, duration, server version, migration head, rows per table.",
)
def postgres_backup(context: dg.AssetExecutionContext, postgres: PostgresResource,
                    backup_storage: BackupStorageResource) -> dg.MaterializeResult:
    try:
        entry = backups.create_backup(postgres.url(), backup_storage.directory(), keys=backup_storage.key_ring())
    except backups.BackupError as exc:
        raise dg.Failure(description=redact(str(exc))) from None
    context.log.info(f"backup {entry.id}: {entry.size_bytes} bytes")
    return dg.MaterializeResult(metadata=backup_metadata(entry))


@dg.asset(
    name=keys.POSTGRES_RESTORE_CHECK,
    group_name=keys.BACKUPS_GROUP,
    kinds={"postgres"},
    owners=["team:data-platform"],
    deps=[keys.POSTGRES_BACKUP],
    code_version=code_version(restore, catalog),
    freshness_policy=RESTORE_CHECK_FRESHNESS,
    description="Restores the newest backup into a scratch database and compares row counts and checksums "
                "per table with its manifest; fails listing the first differences. Metadata: RTO (seconds "
                "to restore and compare), size, differences.",
)
def postgres_restore_check(context: dg.AssetExecutionContext, postgres: PostgresResource,
                           backup_storage: BackupStorageResource) -> dg.MaterializeResult:
    backup_dir = backup_storage.directory()
    try:
        entry = backups.get_backup(backup_dir, "latest")
        started = time.monotonic()
        result = backups.restore_check(postgres.url(), backup_dir, entry.id, keys=backup_storage.key_ring(),
                                       erasure_ledger=backup_storage.gdpr_ledger())
    except backups.BackupError as exc:
        raise dg.Failure(description=redact(str(exc))) from None
    metadata = restore_check_metadata(entry, result, time.monotonic() - started)
    if not result.ok:
        differences = [redact(str(d)) for d in (result.differences or [])]
        shown = "; ".join(differences[:DIFFERENCES_SHOWN]) or "restore failed"
        raise dg.Failure(description=f"restore check of {entry.id} failed: {shown}", metadata=metadata)
    context.log.info(f"restore check of {entry.id} passed in {metadata['check_duration_s'].value:.1f} s")
    return dg.MaterializeResult(metadata=metadata)


def restore_check_metadata(entry: "backups.BackupEntry", result: "backups.RestoreCheckResult",
                           elapsed_s: float) -> dict:
    """postgres_restore_check's metadata (also recorded by `backup restore-check`)."""
    differences = [redact(str(d)) for d in (result.differences or [])]
    duration = result.duration_s if result.duration_s is not None else elapsed_s
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
    return with_human_sizes(metadata)


@records.builds(keys.POSTGRES_RESTORE_CHECK)
def restore_check_record(result: "backups.RestoreCheckResult", live: records.Live) -> dict:
    entry = backups.get_backup(live.backup_storage.directory(), result.backup_id)
    return restore_check_metadata(entry, result, result.duration_s or 0.0)


class BackupPruneConfig(dg.Config):
    dry_run: bool = Field(False, description="Say what would be pruned; delete nothing.")


@dg.asset(
    name=keys.POSTGRES_BACKUP_PRUNE,
    group_name=keys.BACKUPS_GROUP,
    kinds={"postgres"},
    owners=["team:data-platform"],
    deps=[keys.POSTGRES_BACKUP],
    code_version=code_version(retention, catalog),
    description="Prunes the logical dumps in BACKUP_DIR that the recovery window no longer needs: a dump older "
                "than RECOVERY_WINDOW_DAYS and not among the newest BACKUP_KEEP_LAST is deleted; the newest "
                "verified and newest restore-checked dumps never are. Also removes temporary directories killed "
                "backups left. Metadata: dumps pruned, bytes freed, oldest kept, the rule.",
)
def postgres_backup_prune(context: dg.AssetExecutionContext, config: BackupPruneConfig,
                          backup_storage: BackupStorageResource) -> dg.MaterializeResult:
    result = backups.prune(backup_storage.directory(), window_days=backup_storage.window_days(),
                           keep_last=backup_storage.keep_newest(), dry_run=config.dry_run)
    context.log.info(f"{'would prune' if config.dry_run else 'pruned'} {len(result.deleted)} backup(s), "
                     f"{result.bytes_freed} bytes; {len(result.kept)} kept")
    return dg.MaterializeResult(metadata=prune_metadata(result))


PRUNE_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("backup_id", "string"),
    dg.TableColumn("created_at", "string"),
    dg.TableColumn("size_bytes", "int"),
    dg.TableColumn("action", "string", description="pruned (or would be), or kept"),
    dg.TableColumn("why", "string", description="the rules that keep it"),
])


@records.builds(keys.POSTGRES_BACKUP_PRUNE)
def prune_metadata(result: "backups.PruneResult", live: records.Live | None = None) -> dict:
    """postgres_backup_prune's metadata (also recorded by `backup prune`)."""
    oldest = result.oldest_kept
    verb = "would prune" if result.dry_run else "pruned"
    rows = [dg.TableRecord({"backup_id": e.id, "created_at": e.created_at.isoformat(), "size_bytes": e.size_bytes,
                            "action": verb, "why": ""}) for e in result.deleted]
    rows += [dg.TableRecord({"backup_id": e.id, "created_at": e.created_at.isoformat(), "size_bytes": e.size_bytes,
                             "action": "kept", "why": ", ".join(result.reasons.get(e.id, []))}) for e in result.kept]
    return with_human_sizes({
        "dry_run": result.dry_run,
        "pruned_count": len(result.deleted),
        "freed_bytes": result.bytes_freed,
        "kept_count": len(result.kept),
        "oldest_kept": oldest.id if oldest else "none",
        "oldest_kept_created_at": oldest.created_at.isoformat() if oldest else "none",
        "window_days": dg.MetadataValue.float(float(result.window_days)) if result.window_days is not None else "none",
        "keep_last": result.keep_last,
        "temporary_removed": len(result.temporary_removed),
        "backups": dg.MetadataValue.table(rows, schema=PRUNE_COLUMNS),
    })


def freshness_check_result(freshness: Freshness, section: str, repair: str) -> dg.AssetCheckResult:
    """A freshness promise as a check result: one line saying how old the newest copy is and, when it
    is too old, what to run; the runbook section as a link."""
    description = freshness.describe() if freshness.ok else f"{freshness.describe()}; repair: {repair}"
    return dg.AssetCheckResult(
        passed=freshness.ok,
        description=description,
        metadata={"newest_id": freshness.cursor,
                  "age_hours": dg.MetadataValue.float(freshness.age_hours if freshness.age_hours is not None else -1.0),
                  "max_age_hours": dg.MetadataValue.float(freshness.max_age_hours), **runbook_metadata(section)},
    )


BACKUP_FRESHNESS_SECTION = keys.check_section(keys.POSTGRES_BACKUP, keys.FRESHNESS)
RESTORE_CHECK_FRESHNESS_SECTION = keys.check_section(keys.POSTGRES_RESTORE_CHECK, keys.FRESHNESS)


@dg.asset_check(asset=postgres_backup, name=keys.FRESHNESS, metadata=runbook_metadata(BACKUP_FRESHNESS_SECTION),
                description=described("The newest verified backup (its sha256 re-checked after writing) is younger "
                                      "than BACKUP_MAX_AGE_HOURS (default 26: a nightly backup plus slack).",
                                      BACKUP_FRESHNESS_SECTION))
def check_postgres_backup_freshness(backup_storage: BackupStorageResource) -> dg.AssetCheckResult:
    return freshness_check_result(
        verified_freshness(backup_storage.directory(), backup_storage.verified_max_age_hours()),
        BACKUP_FRESHNESS_SECTION, "orchestrator-data backup create, and turn nightly_postgres_backup_schedule on")


@dg.asset_check(asset=postgres_restore_check, name=keys.FRESHNESS,
                metadata=runbook_metadata(RESTORE_CHECK_FRESHNESS_SECTION),
                description=described("The newest backup whose restore check passed is younger than "
                                      "RESTORE_CHECK_MAX_AGE_DAYS (default 8: a weekly restore check plus slack).",
                                      RESTORE_CHECK_FRESHNESS_SECTION))
def check_postgres_restore_check_freshness(backup_storage: BackupStorageResource) -> dg.AssetCheckResult:
    return freshness_check_result(
        restore_check_freshness(backup_storage.directory(), backup_storage.restore_checked_max_age_hours()),
        RESTORE_CHECK_FRESHNESS_SECTION,
        "orchestrator-data backup restore-check latest, and turn weekly_postgres_restore_check_schedule on")


BACKUP_ASSETS = [postgres_backup, postgres_restore_check, postgres_backup_prune]
BACKUP_ASSET_CHECKS = [check_postgres_backup_freshness, check_postgres_restore_check_freshness]
