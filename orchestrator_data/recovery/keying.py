"""The one place the recovery chain gets its keys from settings: the key new base backups and WAL
segments are encrypted with, and the lookup of a key by its id for reading them back. Today that is
BACKUP_ENCRYPTION_KEY alone; the backup key ring (backups/keys.py) replaces both functions' bodies."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator_data.backups.crypto import key_id
from orchestrator_data.recovery.errors import RecoveryError


def current_key(settings) -> bytes | None:
    return settings.backup_key_bytes


def key_lookup(settings) -> Callable[[str], bytes]:
    def key_for(wanted: str) -> bytes:
        key = settings.backup_key_bytes
        if key is None:
            raise RecoveryError(f"the archive is encrypted with key {wanted} and BACKUP_ENCRYPTION_KEY is not set")
        if key_id(key) != wanted:
            raise RecoveryError(f"the archive is encrypted with key {wanted}; BACKUP_ENCRYPTION_KEY is key {key_id(key)}")
        return key

    return key_for
