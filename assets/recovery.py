"""Point-in-time recovery as assets: the WAL archive (its lag, slot and gaps, observed), base backups
(materialized by a schedule) and the recovery check (weekly; its restore time a plottable number), with
the checks "archive lag within the RPO target" and "recovery window covered".

Thin: `orchestrator_data.recovery` does the work, the same code as `orchestrator-data recovery ...`.
Keys come from recovery/keying.py, the one place that reads them from settings."""

# no `from __future__ import annotations`: Dagster reads the context annotation at definition time
import random
from datetime import UTC, datetime, timedelta

import dagster as dg

from assets import keys, records
from assets._metadata import code_version, with_human_sizes
from assets._runbook import runbook_metadata
from assets.backups import BackupPruneConfig  # the same run config: dry_run
from orchestrator_data.recovery import base_backups, cadence, check as recovery_check_module, keying, report, status
from orchestrator_data.recovery import prune as prune_module
from orchestrator_data.recovery.errors import RecoveryError, RecoveryRefused
from orchestrator_data.recovery.layout import Layout
from orchestrator_data.recovery.server import Primary
from orchestrator_data.redaction import redact
from orchestrator_data.runbook import described
from resources import PostgresResource

FULL_EVERY_DAYS = 7  # a full base backup at least weekly; incremental ones in between


def _layout(postgres: PostgresResource) -> Layout:
    return Layout.from_settings(postgres.settings)


@records.builds(keys.WAL_ARCHIVE)
def wal_archive_metadata(found: dict, live: records.Live | None = None) -> dict:
    return with_human_sizes({
        "archived_lsn": found.get("archived_lsn") or "none",
        "current_lsn": found.get("current_lsn") or "none",
        "last_archived_at": found.get("last_archived_at") or "never",
        "lag_bytes": int(found.get("lag_bytes") or 0),
        "lag_seconds": dg.MetadataValue.float(float(found["lag_seconds"]) if found.get("lag_seconds") is not None else -1.0),
        "slot_retained_bytes": int(found.get("slot_retained_bytes") or 0),
        "slot_wal_status": found.get("slot_wal_status") or "missing",
        "archiver_running": bool(found.get("archiver_running")),
        "streaming": bool(found.get("streaming")),
        "synchronous": bool(found.get("sync")),
        "gap_count": len(found.get("gaps") or []),
        "window_start": found.get("window_start") or "none",
    })


@dg.asset(
    name=keys.WAL_ARCHIVE,
    group_name=keys.BACKUPS_GROUP,
    kinds={"postgres"},
    owners=["team:data-platform"],
    deps=[keys.POSTGRES_SCHEMA],
    code_version=code_version(status, report),
    description="The continuous WAL archive in RECOVERY_DIR/wal (pg_receivewal through a slot), observed: last "
                "archived LSN and time, lag in bytes and seconds (the RPO now), what the slot retains, gaps.",
)
def wal_archive(postgres: PostgresResource) -> dg.MaterializeResult:
    settings = postgres.settings
    found = report.archive_report(settings, Primary(postgres.url()), _layout(postgres))
    return dg.MaterializeResult(metadata=wal_archive_metadata(found))


@records.builds(keys.POSTGRES_BASE_BACKUP)
def base_backup_metadata(backup: "base_backups.BaseBackup", live: records.Live | None = None) -> dict:
    facts = backup.as_dict()
    return with_human_sizes({
        "backup_id": backup.id, "kind": backup.kind, "parent": backup.parent or "none",
        "start_lsn": facts["start_lsn"], "end_lsn": facts["end_lsn"], "timeline": backup.timeline,
        "size_bytes": backup.size_bytes, "sha256": backup.sha256, "encrypted": backup.key_id is not None,
        "duration_s": dg.MetadataValue.float((backup.finished_at - backup.started_at).total_seconds()),
        "path": dg.MetadataValue.path(str(backup.path)),
    })


@dg.asset(
    name=keys.POSTGRES_BASE_BACKUP,
    group_name=keys.BACKUPS_GROUP,
    kinds={"postgres"},
    owners=["team:data-platform"],
    deps=[keys.WAL_ARCHIVE],
    code_version=code_version(base_backups),
    description="A physical base backup in RECOVERY_DIR/base (pg_basebackup -X none; incremental from the previous "
                f"one, full at least every {FULL_EVERY_DAYS} days and once the incrementals add up to BASE_BACKUP_CHAIN_SHARE of "
                "the full's size), encrypted with the backup key when set.",
)
def postgres_base_backup(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    settings = postgres.settings
    layout = _layout(postgres)
    decision = cadence.next_kind(base_backups.list_base_backups(layout), datetime.now(UTC),
                                 full_every_days=FULL_EVERY_DAYS, chain_share=settings.base_backup_chain_share)
    try:
        backup = base_backups.take_base_backup(Primary(postgres.url()), layout, slot=settings.wal_archive_slot,
                                               key=keying.current_key(settings),
                                               incremental=decision.kind == "incremental")
    except (RecoveryError, RecoveryRefused) as exc:
        raise dg.Failure(description=redact(exc.one_line())) from None
    context.log.info(f"base backup {backup.id} ({backup.kind}: {decision.reason}): {backup.size_bytes} bytes")
    return dg.MaterializeResult(metadata=base_backup_metadata(backup))


@records.builds(keys.RECOVERY_CHECK)
def recovery_check_metadata(result: "recovery_check_module.CheckReport", live: records.Live | None = None) -> dict:
    return {
        "ok": result.ok,
        "target_time": result.target_time or "none",
        "recovery_seconds": dg.MetadataValue.float(float(result.recovery_seconds or 0.0)),
        "rpo_lag_seconds": dg.MetadataValue.float(float(result.rpo_lag_seconds if result.rpo_lag_seconds is not None else -1)),
        "rpo_lag_bytes": int(result.rpo_lag_bytes or 0),
        "markers_expected": result.markers_expected,
        "markers_found": result.markers_found,
        "tables_compared": result.tables_compared,
        "tables_not_compared": ", ".join(result.tables_not_compared) or "none",
        "gap_count": len(result.gaps),
        "problems": dg.MetadataValue.md("\n".join(f"- {redact(p)}" for p in result.problems) or "none"),
    }


@dg.asset(
    name=keys.RECOVERY_CHECK,
    group_name=keys.BACKUPS_GROUP,
    kinds={"postgres"},
    owners=["team:data-platform"],
    deps=[keys.POSTGRES_BASE_BACKUP],
    code_version=code_version(recovery_check_module),
    description="Restores a random moment of the recovery window into a scratch cluster and proves it with marker "
                "rows (before the target there, after it not); records the recovery time and the RPO; fails on a gap.",
)
def recovery_check(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    settings = postgres.settings
    try:
        result = recovery_check_module.run_check(Primary(postgres.url()), _layout(postgres),
                                                 slot=settings.wal_archive_slot, key_for=keying.key_lookup(settings),
                                                 rng=random.Random())
    except (RecoveryError, RecoveryRefused) as exc:
        raise dg.Failure(description=redact(exc.one_line())) from None
    metadata = recovery_check_metadata(result)
    if not result.ok:
        raise dg.Failure(description="recovery check failed: " + "; ".join(redact(p) for p in result.problems),
                         metadata=metadata)
    context.log.info(f"recovery check passed: restored to {result.target_time} in {result.recovery_seconds} s")
    return dg.MaterializeResult(metadata=metadata)


@records.builds(keys.RECOVERY_PRUNE)
def recovery_prune_metadata(plan: "prune_module.PrunePlan", live: records.Live | None = None) -> dict:
    """recovery_prune's metadata (also recorded by `recovery prune`)."""
    return with_human_sizes({
        "dry_run": plan.dry_run,
        "pruned_base_backups": len(plan.delete_backups),
        "pruned_wal_files": len(plan.delete_wal),
        "pruned_check_records": len(plan.delete_check_tables),
        "freed_bytes": plan.freed_bytes,
        "kept_base_backups": len(plan.keep),
        "window_start": plan.window_start,
        "wal_kept_from": plan.wal_kept_from or "none",
        "notes": "; ".join(plan.notes) or "none",
    })


@dg.asset(
    name=keys.RECOVERY_PRUNE,
    group_name=keys.BACKUPS_GROUP,
    kinds={"postgres"},
    owners=["team:data-platform"],
    deps=[keys.POSTGRES_BASE_BACKUP],
    code_version=code_version(prune_module),
    description="Base backups and WAL of RECOVERY_DIR that RECOVERY_WINDOW_DAYS and RECOVERY_KEEP_BASE_BACKUPS no "
                "longer need, deleted (never a backup an incremental kept needs, never WAL from the oldest kept "
                "backup on). Metadata: what was pruned, bytes freed, the window's start.",
)
def recovery_prune(context: dg.AssetExecutionContext, config: BackupPruneConfig,
                   postgres: PostgresResource) -> dg.MaterializeResult:
    settings = postgres.settings
    plan = prune_module.prune(_layout(postgres), settings.recovery_window_days, settings.recovery_keep_base_backups,
                              dry_run=config.dry_run)
    context.log.info(f"{'would prune' if plan.dry_run else 'pruned'} {len(plan.delete_backups)} base backup(s) and "
                     f"{len(plan.delete_wal)} WAL file(s), {plan.freed_bytes} bytes")
    return dg.MaterializeResult(metadata=recovery_prune_metadata(plan))


RPO_SECTION = keys.check_section(keys.WAL_ARCHIVE, keys.RPO)
WINDOW_SECTION = keys.check_section(keys.POSTGRES_BASE_BACKUP, keys.WINDOW)


def rpo_result(found: dict, target_s: float) -> dg.AssetCheckResult:
    lag = found.get("lag_seconds")
    passed = lag is not None and lag <= target_s and found.get("slot_wal_status") not in ("lost", None)
    description = (f"archive lag {lag if lag is not None else 'unknown'} s against the RPO target {target_s:.0f} s; "
                   f"slot {found.get('slot_wal_status') or 'missing'}")
    return dg.AssetCheckResult(passed=passed, description=description,
                               metadata={"lag_seconds": dg.MetadataValue.float(float(lag) if lag is not None else -1.0),
                                         "lag_bytes": int(found.get("lag_bytes") or 0), **runbook_metadata(RPO_SECTION)})


@dg.asset_check(asset=wal_archive, name=keys.RPO, metadata=runbook_metadata(RPO_SECTION),
                description=described("The WAL archive is behind the server by no more than RPO_TARGET_SECONDS, and "
                                      "its slot has not lost WAL.", RPO_SECTION))
def check_wal_archive_rpo(postgres: PostgresResource) -> dg.AssetCheckResult:
    found = report.archive_report(postgres.settings, Primary(postgres.url()), _layout(postgres))
    return rpo_result(found, postgres.settings.rpo_target_seconds)


def window_result(layout: Layout, window_days: float, key_for, now: datetime | None = None) -> dg.AssetCheckResult:
    now = now or datetime.now(UTC)
    backups = base_backups.list_base_backups(layout)
    gaps = report.gap_windows(layout, key_for)
    start = now - timedelta(days=window_days)
    oldest = backups[0].finished_at if backups else None
    covered = oldest is not None and oldest <= start and not gaps
    if oldest is None:
        description = "no base backup: nothing can be restored"
    elif gaps:
        description = f"{len(gaps)} gap(s) in the archive: moments after {gaps[0]['unrestorable_from_lsn']} cannot be restored"
    else:
        description = (f"restorable from {oldest.isoformat(timespec='seconds')}; the window of {window_days:g} days "
                       f"starts {start.isoformat(timespec='seconds')}")
    return dg.AssetCheckResult(passed=covered, description=description,
                               metadata={"base_backups": len(backups), "gap_count": len(gaps),
                                         "restorable_from": oldest.isoformat() if oldest else "none",
                                         **runbook_metadata(WINDOW_SECTION)})


@dg.asset_check(asset=postgres_base_backup, name=keys.WINDOW, metadata=runbook_metadata(WINDOW_SECTION),
                description=described("Every moment of the last RECOVERY_WINDOW_DAYS can be restored: a base backup "
                                      "from before the window and no gap in the WAL archive.", WINDOW_SECTION))
def check_postgres_base_backup_window(postgres: PostgresResource) -> dg.AssetCheckResult:
    settings = postgres.settings
    return window_result(_layout(postgres), settings.recovery_window_days, keying.key_lookup(settings))


RECOVERY_ASSETS = [wal_archive, postgres_base_backup, recovery_check, recovery_prune]
RECOVERY_ASSET_CHECKS = [check_wal_archive_rpo, check_postgres_base_backup_window]
