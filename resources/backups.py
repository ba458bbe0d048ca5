"""Backup storage as a Dagster resource: where backups live, the key ring that encrypts and opens them,
how old the newest ones may get and how long they are kept. Fields left unset come from BACKUP_DIR,
BACKUP_ENCRYPTION_KEY, BACKUP_KEYRING_FILE, BACKUP_MAX_AGE_HOURS, RESTORE_CHECK_MAX_AGE_DAYS,
RECOVERY_WINDOW_DAYS and BACKUP_KEEP_LAST."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from orchestrator_data.backups import KeyRing, decode_key
from orchestrator_data.backups.keys import read_key_ring
from resources._base import SettingsResource


class BackupStorageResource(SettingsResource):
    backup_dir: str | None = Field(None, description="Directory of the backups (default BACKUP_DIR).")
    encryption_key: str | None = Field(None, description="base64 of 32 bytes; set through "
                                                         "dg.EnvVar('BACKUP_ENCRYPTION_KEY'). Unset: not encrypted.")
    keyring_file: str | None = Field(None, description="The key ring file (default BACKUP_KEYRING_FILE); "
                                                       "its keys never appear here, only its path.")
    max_age_hours: float | None = Field(None, description="How old the newest verified backup may be "
                                                          "(default BACKUP_MAX_AGE_HOURS).")
    restore_check_max_age_days: float | None = Field(None, description="How old the newest restore-checked "
                                                                       "backup may be (default RESTORE_CHECK_MAX_AGE_DAYS).")
    recovery_window_days: int | None = Field(None, description="Backups older than this many days are pruned "
                                                               "(default RECOVERY_WINDOW_DAYS).")
    keep_last: int | None = Field(None, description="The newest N backups are kept whatever their age "
                                                    "(default BACKUP_KEEP_LAST).")

    def directory(self) -> Path:
        return Path(self.backup_dir) if self.backup_dir else Path(self.settings.backup_dir)

    def key(self) -> bytes | None:
        """The decoded key (None: backups are not encrypted). Raises BackupKeyError, naming no value."""
        if self.encryption_key:
            return decode_key(self.encryption_key.strip())
        return self.settings.backup_key_bytes

    def key_ring(self) -> KeyRing:
        """The ring: the ring file's keys and the single key (`encryption_key` or BACKUP_ENCRYPTION_KEY).
        New backups use its current key; a backup is opened with the key its manifest names. Raises
        BackupKeyError (a ring file missing, open to others or inside the backup directory), naming no value."""
        file = Path(self.keyring_file) if self.keyring_file else self.settings.backup_keyring_file
        return read_key_ring(file, self.key(), self.directory())

    def gdpr_ledger(self) -> Path:
        """The GDPR erasure ledger file: GDPR_LEDGER_FILE, else gdpr-ledger.jsonl in the backup directory."""
        if self.settings.gdpr_ledger_file is not None:
            return Path(self.settings.gdpr_ledger_file)
        return self.directory() / "gdpr-ledger.jsonl"

    def window_days(self) -> int:
        return self.recovery_window_days if self.recovery_window_days is not None else self.settings.recovery_window_days

    def keep_newest(self) -> int:
        return self.keep_last if self.keep_last is not None else self.settings.backup_keep_last

    def verified_max_age_hours(self) -> float:
        return self.max_age_hours if self.max_age_hours is not None else self.settings.backup_max_age_hours

    def restore_checked_max_age_hours(self) -> float:
        days = self.restore_check_max_age_days
        return 24 * (days if days is not None else self.settings.restore_check_max_age_days)
