"""Every asset key, group and check name, spelled once: the assets, the jobs that select them, the CLI's
recording and the runbook all take them from here.

Plain strings (an asset's name is its key), so this module imports nothing.
"""

from __future__ import annotations

# -- groups: what a DBA looks for in the asset graph ------------------------------------------------
POSTGRES_GROUP = "postgres"  # the application schema and the seed data
REDIS_GROUP = "redis"  # the keyspace
SEARCH_GROUP = "search"  # the indices, their documents (the sync), full loads by month, lifecycle
BACKUPS_GROUP = "backups"  # copies and their restore checks: PostgreSQL backups and search snapshots
OPERATIONS_GROUP = "operations"  # the servers' health, the system metrics, the retention purge
GROUPS = (POSTGRES_GROUP, REDIS_GROUP, SEARCH_GROUP, BACKUPS_GROUP, OPERATIONS_GROUP)

# -- assets ----------------------------------------------------------------------------------------
SERVICE_HEALTH = "service_health"
POSTGRES_SCHEMA = "postgres_schema"
SEED_DATA = "seed_data"
REDIS_KEYSPACE = "redis_keyspace"
SEARCH_LIFECYCLE = "search_lifecycle"
POSTGRES_BACKUP = "postgres_backup"
POSTGRES_RESTORE_CHECK = "postgres_restore_check"
POSTGRES_BACKUP_PRUNE = "postgres_backup_prune"
SEARCH_SNAPSHOT = "search_snapshot"
SEARCH_SNAPSHOT_RESTORE_CHECK = "search_snapshot_restore_check"
SYSTEM_METRICS = "system_metrics"
RETENTION_PURGE = "retention_purge"
# point-in-time recovery (docs/recovery.md)
WAL_ARCHIVE = "wal_archive"
POSTGRES_BASE_BACKUP = "postgres_base_backup"
RECOVERY_CHECK = "recovery_check"
RECOVERY_PRUNE = "recovery_prune"
# copies off the machine (docs/backups.md)
OFFSITE_COPIES = "offsite_copies"
# the failover drill on a scratch HA pair (docs/failover.md)
FAILOVER_DRILL = "failover_drill"
# replication (docs/recovery.md#replication-and-failover)
POSTGRES_REPLICATION = "postgres_replication"


def index_key(name: str) -> str:
    """The asset of a search index's template, backing index and aliases."""
    return f"search_{name}_index"


def documents_key(name: str) -> str:
    """The asset of a synced index's documents (the incremental sync)."""
    return f"search_{name}_documents"


def full_load_key(name: str) -> str:
    """The asset of an index's full load, partitioned by month."""
    return f"search_{name}_full_load"


def provisioned(init) -> list[tuple[str, object]]:
    """What an init or a reset (their InitReport) changed, as (asset, report): the schema, the keyspace
    and each index, those that were not skipped."""
    found: list[tuple[str, object]] = []
    if init.migration is not None:
        found.append((POSTGRES_SCHEMA, init.migration))
    if init.redis is not None:
        found.append((REDIS_KEYSPACE, init.redis))
    found += [(index_key(made.name), made) for made in init.search or []]
    return found


def index_keys(names) -> list[str]:
    return [index_key(name) for name in names]


def documents_keys(names) -> list[str]:
    return [documents_key(name) for name in names]


# -- checks: named for what they check; the asset is already in the check's key -----------------------
# (a check's step key is `<asset>_<check>`, e.g. search_executions_documents_reconciliation)
VERSIONS = "versions"
LATENCY = "latency"
DRIFT = "drift"
SECURITY = "security"
TTL = "ttl"
RECONCILIATION = "reconciliation"
FRESHNESS = "freshness"
RPO = "rpo"          # the archive's lag within RPO_TARGET_SECONDS
WINDOW = "window"    # the recovery window covered by base backups and gapless WAL
LAG = "lag"          # each standby within REPLICATION_LAG_TARGET_SECONDS / _BYTES


def check_section(asset: str, check: str) -> str:
    """The runbook section of a check: its asset and its name, as the UI shows them."""
    return f"{asset}: {check}"


# the four reconciliation checks share one section
RECONCILIATION_SECTION = check_section("search documents", RECONCILIATION)
