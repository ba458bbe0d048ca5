"""Asset jobs and op jobs."""

import dagster as dg

from assets import keys
from assets._runbook import runbook_metadata
from jobs.gdpr import gdpr_erase_job, gdpr_export_job
from jobs.queue_tags import LIVE_SCHEMA_TAGS, MIGRATION_TAGS, SEARCH_FULL_LOAD_TAGS, sync_tags, tags
from jobs.reset import reset_job
from orchestrator_data.search.full_load import PARTITIONED
from orchestrator_data.search.indices import NAMES
from orchestrator_data.search.sources import SYNCED

# Bring the data layer up from nothing: check the servers, migrate, set Redis up, seed (development
# and testing only: seed_data fails in production). `make run` runs it.
bootstrap_job = dg.define_asset_job(
    "bootstrap_job",
    metadata=runbook_metadata("bootstrap_job"),
    tags=tags(MIGRATION_TAGS, sync_tags(SYNCED)),
    selection=dg.AssetSelection.assets(keys.SERVICE_HEALTH, keys.POSTGRES_SCHEMA, keys.SEED_DATA, keys.REDIS_KEYSPACE,
                                       *keys.index_keys(NAMES), *keys.documents_keys(SYNCED)),
    description="Check every server, migrate PostgreSQL to head, set the Redis keyspace up, seed, create the search "
                "indices and sync them in full.",
)

# quick: its three steps take well under a second each, so they run in the run's own process rather
# than paying a Python start-up and code load per step
health_job = dg.define_asset_job(
    "health_job",
    metadata=runbook_metadata("health_job"),
    selection=dg.AssetSelection.assets(keys.SERVICE_HEALTH),
    executor_def=dg.in_process_executor,
    description="Check PostgreSQL, Redis and Elasticsearch: versions, latency, pools.",
)

migrate_job = dg.define_asset_job(
    "migrate_job",
    metadata=runbook_metadata("migrate_job"),
    tags=MIGRATION_TAGS,
    selection=dg.AssetSelection.assets(keys.POSTGRES_SCHEMA),
    description="Migrate PostgreSQL to head under the advisory lock, then check drift and row-level security.",
)

seed_job = dg.define_asset_job(
    "seed_job",
    metadata=runbook_metadata("seed_job"),
    selection=dg.AssetSelection.assets(keys.SEED_DATA),
    description="Load the deterministic seed (idempotent; refused in production).",
)

postgres_backup_job = dg.define_asset_job(
    "postgres_backup_job",
    metadata=runbook_metadata("postgres_backup_job"),
    tags=LIVE_SCHEMA_TAGS,
    selection=dg.AssetSelection.assets(keys.POSTGRES_BACKUP),
    description="Back PostgreSQL up into BACKUP_DIR (pg_dump with per-table checksums, encrypted when a key is set).",
)

postgres_restore_check_job = dg.define_asset_job(
    "postgres_restore_check_job",
    metadata=runbook_metadata("postgres_restore_check_job"),
    tags=LIVE_SCHEMA_TAGS,
    selection=dg.AssetSelection.assets(keys.POSTGRES_RESTORE_CHECK),
    description="Restore the newest backup into a scratch database, compare it with its manifest, check freshness.",
)

# run config (ops.postgres_backup_prune.config, ops.recovery_prune.config): dry_run
postgres_backup_prune_job = dg.define_asset_job(
    "postgres_backup_prune_job",
    metadata=runbook_metadata("postgres_backup_prune_job"),
    selection=dg.AssetSelection.assets(keys.POSTGRES_BACKUP_PRUNE, keys.RECOVERY_PRUNE),
    description="Prune what the recovery window (RECOVERY_WINDOW_DAYS) no longer needs: the logical dumps not among "
                "the newest BACKUP_KEEP_LAST (never the newest verified or restore-checked one) and abandoned "
                "temporary directories; the base backups and WAL beyond RECOVERY_KEEP_BASE_BACKUPS.",
)

# the documents only: the indices exist (bootstrap or `search init`), so each run is the light incremental step
search_sync_job = dg.define_asset_job(
    "search_sync_job",
    metadata=runbook_metadata("search_sync_job"),
    tags=sync_tags(SYNCED),
    selection=dg.AssetSelection.assets(*keys.documents_keys(SYNCED)),
    description="Sync the search indices from PostgreSQL (incremental from each watermark), then reconcile them.",
)

# a backfill of this job runs one step per month (partition) on whatever executor runs it; never
# scheduled, and not in bootstrap_job: the incremental sync keeps the indices current
search_full_load_job = dg.define_asset_job(
    "search_full_load_job",
    metadata=runbook_metadata("search_full_load_job"),
    selection=dg.AssetSelection.assets(*[keys.full_load_key(name) for name in PARTITIONED]),
    # not limited in the run queue: a backfill's months run side by side on the workers
    tags=SEARCH_FULL_LOAD_TAGS,
    description="Load the executions and audit_logs search indices in full, one month per partition (backfill the "
                "months, or materialize one again alone). Never moves the sync's watermark.",
)

search_lifecycle_job = dg.define_asset_job(
    "search_lifecycle_job",
    metadata=runbook_metadata("search_lifecycle_job"),
    selection=dg.AssetSelection.assets(keys.SEARCH_LIFECYCLE),
    description="Roll the search indices over and apply retention, by their lifecycle policies.",
)

# a snapshot of every index, then a restore check of it (not in bootstrap_job: no snapshot on every bootstrap)
search_snapshot_job = dg.define_asset_job(
    "search_snapshot_job",
    metadata=runbook_metadata("search_snapshot_job"),
    selection=dg.AssetSelection.assets(keys.SEARCH_SNAPSHOT, keys.SEARCH_SNAPSHOT_RESTORE_CHECK),
    description="Snapshot every search index (then keep the newest SEARCH_SNAPSHOT_KEEP), restore the snapshot into "
                "renamed indices and compare it, check both freshness promises.",
)

system_metrics_job = dg.define_asset_job(
    "system_metrics_job",
    metadata=runbook_metadata("system_metrics_job"),
    selection=dg.AssetSelection.assets(keys.SYSTEM_METRICS),
    description="Sample PostgreSQL, Redis and Elasticsearch into the system_metrics index (docs/system-metrics.md).",
)

# run config (ops.retention_purge.config): dry_run, confirm; Dagster checks it before the run starts
retention_job = dg.define_asset_job(
    "retention_job",
    metadata=runbook_metadata("retention_job"),
    selection=dg.AssetSelection.assets(keys.RETENTION_PURGE),
    description="Purge rows past their retention policy in bounded batches (run config: dry_run; confirm: true in "
                "production).",
)

# point-in-time recovery (docs/recovery.md): the archive observed with each base backup
postgres_base_backup_job = dg.define_asset_job(
    "postgres_base_backup_job",
    metadata=runbook_metadata("postgres_base_backup_job"),
    selection=dg.AssetSelection.assets(keys.WAL_ARCHIVE, keys.POSTGRES_BASE_BACKUP),
    description="Observe the WAL archive, then take a base backup (incremental; full weekly or once the incrementals "
                "reach BASE_BACKUP_CHAIN_SHARE of the full) into RECOVERY_DIR.",
)

recovery_check_job = dg.define_asset_job(
    "recovery_check_job",
    metadata=runbook_metadata("recovery_check_job"),
    selection=dg.AssetSelection.assets(keys.RECOVERY_CHECK),
    description="Restore a random moment of the recovery window into a scratch cluster and prove it with marker rows.",
)

# copies off the machine (docs/backups.md): what the bucket lacks, verified by checksum
offsite_push_job = dg.define_asset_job(
    "offsite_push_job",
    metadata=runbook_metadata("offsite_push_job"),
    selection=dg.AssetSelection.assets(keys.OFFSITE_COPIES),
    description="Copy the dumps, base backups and completed WAL files the bucket (OFFSITE_BUCKET) lacks, each "
                "verified by checksum after upload; check the age of the newest copy.",
)

# a failover drill on a scratch HA pair of its own (docs/failover.md), never on the configured database
dr_drill_job = dg.define_asset_job(
    "dr_drill_job",
    metadata=runbook_metadata("dr_drill_job"),
    selection=dg.AssetSelection.assets(keys.FAILOVER_DRILL),
    description="Start a scratch Patroni pair, kill its primary under writers, record writes-resumed time, commits "
                "lost and rejoin time.",
)

# replication observed (docs/recovery.md#replication-and-failover): one query, in the run's own process
replication_job = dg.define_asset_job(
    "replication_job",
    metadata=runbook_metadata("replication_job"),
    selection=dg.AssetSelection.assets(keys.POSTGRES_REPLICATION),
    executor_def=dg.in_process_executor,
    description="Observe replication: who is primary, its timeline, each standby's lag, each slot's retained WAL; "
                "check the lag against its target.",
)

JOBS = [bootstrap_job, health_job, migrate_job, seed_job, reset_job, postgres_backup_job, postgres_restore_check_job,
        postgres_backup_prune_job,
        search_sync_job, search_full_load_job, search_lifecycle_job, search_snapshot_job, system_metrics_job,
        gdpr_export_job, gdpr_erase_job, retention_job, postgres_base_backup_job, recovery_check_job,
        offsite_push_job, dr_drill_job, replication_job]

__all__ = ["JOBS", "bootstrap_job", "dr_drill_job", "gdpr_erase_job", "gdpr_export_job", "health_job", "migrate_job",
           "offsite_push_job", "postgres_backup_job", "postgres_backup_prune_job", "postgres_base_backup_job",
           "postgres_restore_check_job", "recovery_check_job", "replication_job", "reset_job", "retention_job",
           "search_full_load_job",
           "search_lifecycle_job", "search_snapshot_job", "search_sync_job", "seed_job", "system_metrics_job"]
