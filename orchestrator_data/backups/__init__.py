"""PostgreSQL backups: snapshot-consistent pg_dump with a manifest of per-table checksums, optional
authenticated encryption at rest, restore checks into a scratch database, and retention.

Domain core only (never imports dagster); the Dagster assets, schedules and sensors call these."""

from orchestrator_data.backups.catalog import (
    BackupCorrupt,
    BackupEntry,
    BackupError,
    BackupKeyError,
    BackupNotFound,
    BackupToolError,
    get_backup,
    latest_restore_checked,
    latest_verified,
    list_backups,
    table_summary,
)
from orchestrator_data.backups.create import VerifyResult, create_backup, verify_backup
from orchestrator_data.backups.crypto import decode_key, key_id
from orchestrator_data.backups.keys import Key, KeyRing, load_key_ring
from orchestrator_data.backups.restore import RestoreCheckResult, restore_check
from orchestrator_data.backups.retention import PruneResult, plan_prune, prune

__all__ = [
    "BackupCorrupt", "BackupEntry", "BackupError", "BackupKeyError", "BackupNotFound", "BackupToolError",
    "Key", "KeyRing", "PruneResult", "RestoreCheckResult", "VerifyResult", "create_backup", "decode_key", "get_backup", "key_id", "load_key_ring",
    "latest_restore_checked", "latest_verified", "list_backups", "table_summary", "plan_prune", "prune", "restore_check", "verify_backup",
]
