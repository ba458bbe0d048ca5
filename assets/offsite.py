"""Copies off the machine as an asset: `offsite_copies` copies what the bucket lacks (dumps, base backups,
completed WAL; each verified by checksum after upload) and records what it copied and what the bucket
holds, with the check "the newest copy off the machine is younger than OFFSITE_MAX_LAG_HOURS".

Thin: `orchestrator_data.offsite` does the work, the same code as `orchestrator-data backup offsite push`.
Metadata names the bucket and keys, never a credential."""

# no `from __future__ import annotations`: Dagster reads the context annotation at definition time
import dagster as dg

from assets import keys, records
from assets._metadata import code_version, with_human_sizes
from assets._runbook import runbook_metadata
from orchestrator_data.offsite import catalogue, config as offsite_config, push as push_module, store as store_module
from orchestrator_data.offsite.errors import OffsiteError
from orchestrator_data.recovery import keying
from orchestrator_data.redaction import redact
from orchestrator_data.runbook import described
from resources import BackupStorageResource

OBJECT_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("key", "string", description="below OFFSITE_PREFIX"),
    dg.TableColumn("size_bytes", "int"),
    dg.TableColumn("sha256", "string", description="first 16 hex digits"),
    dg.TableColumn("action", "string", description="uploaded (and verified) or already there (same checksum)"),
])
OBJECTS_SHOWN = 200


@records.builds(keys.OFFSITE_COPIES)
def offsite_metadata(report: "push_module.PushReport", live: records.Live | None = None) -> dict:
    """offsite_copies' metadata (also recorded by `backup offsite push` and the pushes after `backup create`
    and `recovery base-backup`)."""
    age = None
    if report.newest_copy_at is not None and report.finished_at is not None:
        age = max(0.0, (report.finished_at - report.newest_copy_at).total_seconds())
    objects = [{"key": t.key, "size_bytes": t.size, "sha256": t.sha256[:16],
                "action": "uploaded" if t.done else "already there"} for t in report.uploaded + report.skipped]
    return with_human_sizes({
        "where": report.where,
        "objects_uploaded": len(report.uploaded),
        "objects_skipped": len(report.skipped),
        "bytes_uploaded": report.bytes_uploaded,
        # an upload that does not verify raises: every object listed here matched its file's checksum
        "verified": True,
        "dumps": len(report.dumps),
        "base_backups": len(report.base_backups),
        "wal_files": report.wal_files,
        "wal_held_back": len(report.held_back),
        "bucket_objects": report.bucket_objects,
        "bucket_bytes": report.bucket_bytes,
        "newest_copy_at": report.newest_copy_at.isoformat() if report.newest_copy_at else "never",
        "newest_copy_age_s": dg.MetadataValue.float(age if age is not None else -1.0),
        "duration_s": dg.MetadataValue.float(report.duration_s),
        "objects": dg.MetadataValue.table(records=[dg.TableRecord(o) for o in objects[-OBJECTS_SHOWN:]],
                                          schema=OBJECT_COLUMNS),
    })


@dg.asset(
    name=keys.OFFSITE_COPIES,
    group_name=keys.BACKUPS_GROUP,
    kinds={"s3"},
    owners=["team:data-platform"],
    deps=[keys.POSTGRES_BACKUP, keys.POSTGRES_BASE_BACKUP, keys.WAL_ARCHIVE],
    code_version=code_version(push_module, store_module),
    description="Copies off the machine: the logical dumps, base backups and completed WAL files that the bucket "
                "(OFFSITE_BUCKET) lacks, each verified by checksum after upload, manifests last. Metadata: objects "
                "and bytes copied, what the bucket holds, the age of the newest copy.",
)
def offsite_copies(context: dg.AssetExecutionContext, backup_storage: BackupStorageResource) -> dg.MaterializeResult:
    settings = backup_storage.settings
    config = offsite_config.from_settings(settings)
    if config is None:
        raise dg.Failure(description="copies off the machine are not configured: set OFFSITE_BUCKET (docs/backups.md)")
    try:
        report = push_module.push(store_module.ObjectStore(config), backup_dir=backup_storage.directory(),
                                  recovery_root=settings.recovery_root,
                                  encrypted_wal_only=keying.current_key(settings) is not None)
    except OffsiteError as exc:
        raise dg.Failure(description=redact(exc.one_line())) from None
    context.log.info(f"{len(report.uploaded)} file(s) copied to {report.where}, {len(report.skipped)} already there")
    return dg.MaterializeResult(metadata=offsite_metadata(report))


FRESHNESS_SECTION = keys.check_section(keys.OFFSITE_COPIES, keys.FRESHNESS)


@dg.asset_check(asset=offsite_copies, name=keys.FRESHNESS, metadata=runbook_metadata(FRESHNESS_SECTION),
                description=described("The newest copy in the bucket (a dump's or base backup's manifest, or a WAL "
                                      "file) is younger than OFFSITE_MAX_LAG_HOURS (default 26).", FRESHNESS_SECTION))
def check_offsite_copies_freshness(backup_storage: BackupStorageResource) -> dg.AssetCheckResult:
    settings = backup_storage.settings
    config = offsite_config.from_settings(settings)
    limit_s = settings.offsite_max_lag_hours * 3600
    if config is None:
        return dg.AssetCheckResult(passed=False, description="OFFSITE_BUCKET is not set: nothing is copied off "
                                   "the machine", metadata=runbook_metadata(FRESHNESS_SECTION))
    found = catalogue.read(store_module.ObjectStore(config))
    age = found.newest_copy_age_s()
    passed = age is not None and age <= limit_s
    said = "nothing in the bucket" if age is None else f"newest copy {age / 3600:.1f} h old"
    return dg.AssetCheckResult(
        passed=passed,
        description=f"{found.where}: {said} (limit {settings.offsite_max_lag_hours:g} h)"
                    + ("" if passed else "; repair: orchestrator-data backup offsite push, and turn "
                                         "offsite_push_schedule on"),
        metadata={"age_hours": dg.MetadataValue.float(age / 3600 if age is not None else -1.0),
                  "max_age_hours": dg.MetadataValue.float(settings.offsite_max_lag_hours),
                  "objects": len(found.objects), **runbook_metadata(FRESHNESS_SECTION)})


OFFSITE_ASSETS = [offsite_copies]
OFFSITE_ASSET_CHECKS = [check_offsite_copies_freshness]
