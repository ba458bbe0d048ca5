"""Dagster assets and asset checks. Thin: they call the core through resources and record metadata."""

from assets.backups import BACKUP_ASSET_CHECKS, BACKUP_ASSETS
from assets.failover_drill import FAILOVER_DRILL_ASSETS
from assets.health import check_service_latency, check_service_versions, service_health
from assets.metrics import METRICS_ASSET_CHECKS, METRICS_ASSETS
from assets.offsite import OFFSITE_ASSET_CHECKS, OFFSITE_ASSETS
from assets.postgres import POSTGRES_ASSET_CHECKS, POSTGRES_ASSETS
from assets.recovery import RECOVERY_ASSET_CHECKS, RECOVERY_ASSETS
from assets.redis import REDIS_ASSET_CHECKS, REDIS_ASSETS
from assets.replication import REPLICATION_ASSET_CHECKS, REPLICATION_ASSETS
from assets.retention import retention_purge
from assets.search import SEARCH_ASSET_CHECKS, SEARCH_ASSETS
from assets.search_full_load import SEARCH_FULL_LOAD_ASSETS
from assets.search_lifecycle import search_lifecycle
from assets.search_snapshots import SEARCH_SNAPSHOT_ASSET_CHECKS, SEARCH_SNAPSHOT_ASSETS
from assets.seed import seed_data

ASSETS = [service_health, *POSTGRES_ASSETS, seed_data, *REDIS_ASSETS, *SEARCH_ASSETS, *SEARCH_FULL_LOAD_ASSETS, search_lifecycle,
          *SEARCH_SNAPSHOT_ASSETS, *BACKUP_ASSETS, *METRICS_ASSETS, retention_purge, *RECOVERY_ASSETS,
          *OFFSITE_ASSETS, *FAILOVER_DRILL_ASSETS, *REPLICATION_ASSETS]
ASSET_CHECKS = [check_service_versions, check_service_latency, *POSTGRES_ASSET_CHECKS, *REDIS_ASSET_CHECKS,
                *SEARCH_ASSET_CHECKS, *SEARCH_SNAPSHOT_ASSET_CHECKS, *BACKUP_ASSET_CHECKS, *METRICS_ASSET_CHECKS,
                *RECOVERY_ASSET_CHECKS, *OFFSITE_ASSET_CHECKS, *REPLICATION_ASSET_CHECKS]

__all__ = ["ASSETS", "ASSET_CHECKS"]
