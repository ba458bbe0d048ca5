"""Backup storage as a Dagster resource: where backups live, the key that encrypts them, and how old
the newest ones may get. Fields left unset come from BACKUP_DIR, BACKUP_ENCRYPTION_KEY,
BACKUP_MAX_AGE_HOURS and RESTORE_CHECK_MAX_AGE_DAYS."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from orchestrator_data.backups import decode_key
from resources._base import SettingsResource


class BackupStorageResource(SettingsResource):
    backup_dir: str | None = Field(None, description="Directory of the backups (default BACKUP_DIR).")
    encryption_key: str | None = Field(None, description="base64 of 32 bytes; set through "
                                                         "dg.EnvVar('BACKUP_ENCRYPTION_KEY'). Unset: not encrypted.")
    max_age_hours: float | None = Field(None, description="How old the newest verified backup may be "
                                                          "(default BACKUP_MAX_AGE_HOURS).")
    restore_check_max_age_days: float | None = Field(None, description="How old the newest restore-checked "
                                                                       "backup may be (default RESTORE_CHECK_MAX_AGE_DAYS).")

    def directory(self) -> Path:
        return Path(self.backup_dir) if self.backup_dir else Path(self.settings.backup_dir)

    def key(self) -> bytes | None:
        """The decoded key (None: backups are not encrypted). Raises BackupKeyError, naming no value."""
        if self.encryption_key:
            return decode_key(self.encryption_key.strip())
        return self.settings.backup_key_bytes

    def verified_max_age_hours(self) -> float:
        return self.max_age_hours if self.max_age_hours is not None else self.settings.backup_max_age_hours

    def restore_checked_max_age_hours(self) -> float:
        days = self.restore_check_max_age_days
        return 24 * (days if days is not None else self.settings.restore_check_max_age_days)
