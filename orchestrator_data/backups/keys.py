"""The backup key ring: new backups are encrypted with the newest key, every older key still decrypts.

Where the keys live:
  * BACKUP_KEYRING_FILE — a JSON file, mode 0600, outside BACKUP_DIR (a copy of the backups must
    never carry the keys that open them):
        {"format": 1, "keys": [{"id": "<16 hex>", "created_at": "<ISO 8601>", "key": "<base64 of 32 bytes>",
                                "source": "rotate" | "BACKUP_ENCRYPTION_KEY"}, ...]}   oldest first
  * BACKUP_ENCRYPTION_KEY — the one key of setups from before the ring; always a member, and the
    current key as long as the file holds none.

The current key is the file's last (newest) key, else BACKUP_ENCRYPTION_KEY, else none (backups are
written unencrypted). A backup names its key by `key_id` in its manifest; `KeyRing.get(key_id)` finds
it. Ids are safe to print (a truncated hash, crypto.key_id); key material never leaves this module
except to encrypt or decrypt, and no message, repr or log line holds it.

`rotate_key` appends a new random key: under an exclusive lock, written to a temp file, fsynced,
chmod 0600 and renamed over the ring, then the directory fsynced — a crash leaves the old ring or
the new one. It also records BACKUP_ENCRYPTION_KEY in the file on the first rotation, so the file
alone opens every backup."""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orchestrator_data.backups.catalog import BackupKeyError, list_backups
from orchestrator_data.backups.crypto import key_id
from orchestrator_data.stack.common import write_atomically

RING_FORMAT = 1
ENV_SOURCE = "BACKUP_ENCRYPTION_KEY"
ROTATE_SOURCE = "rotate"
KEY_BYTES = 32


class KeyRingFileError(BackupKeyError):
    """The ring file cannot be used: missing, not private, inside BACKUP_DIR, or malformed. BadInput
    (exit 2): refused before anything is read or written."""

    subject = "key ring"


@dataclass(frozen=True)
class Key:
    id: str
    material: bytes = field(repr=False)
    created_at: datetime | None      # None: BACKUP_ENCRYPTION_KEY, whose age nobody recorded
    source: str                      # "rotate" or "BACKUP_ENCRYPTION_KEY"

    def __str__(self) -> str:  # never the material, even by accident in an f-string
        return f"key {self.id}"

    def describe(self) -> dict:
        return {"id": self.id, "created_at": self.created_at.isoformat() if self.created_at else None,
                "source": self.source}


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[Key, ...] = ()       # oldest first; the last is the current key
    file: Path | None = None         # BACKUP_KEYRING_FILE, when set

    @classmethod
    def of(cls, *materials: bytes) -> KeyRing:
        """A ring of the given keys (oldest first), e.g. one key handed to a function directly."""
        return cls(tuple(_key(m, None, ROTATE_SOURCE) for m in materials))

    @property
    def current(self) -> Key | None:
        """The key new backups are encrypted with; None: new backups are not encrypted."""
        return self.keys[-1] if self.keys else None

    @property
    def ids(self) -> list[str]:
        return [k.id for k in self.keys]

    def __contains__(self, wanted: str) -> bool:
        return any(k.id == wanted for k in self.keys)

    def get(self, wanted: str) -> bytes:
        """The material of the key with this id. Raises BackupKeyError naming the id (never a value)."""
        for k in self.keys:
            if k.id == wanted:
                return k.material
        raise BackupKeyError(f"no key with id {wanted} in the key ring ({self.where()}); "
                             f"restore the key ring file from its own backup, or set the key it was written with")

    def where(self) -> str:
        """Where this ring was read from, in words, with the ids it holds."""
        held = ", ".join(self.ids) if self.keys else "no keys"
        sources = [f"BACKUP_KEYRING_FILE {self.file}" if self.file else "BACKUP_KEYRING_FILE unset"]
        sources.append(ENV_SOURCE + (" set" if any(k.source == ENV_SOURCE for k in self.keys) else " unset"))
        return f"{'; '.join(sources)}; it holds {held}"


def _key(material: bytes, created_at: datetime | None, source: str) -> Key:
    if len(material) != KEY_BYTES:
        raise BackupKeyError(f"a backup key must be {KEY_BYTES} bytes, not {len(material)}")
    return Key(key_id(material), material, created_at, source)


def load_key_ring(settings) -> KeyRing:
    """The ring of the settings: BACKUP_KEYRING_FILE's keys and BACKUP_ENCRYPTION_KEY. Raises
    KeyRingFileError when the file is set but missing, readable by others, inside BACKUP_DIR or
    malformed."""
    return read_key_ring(settings.backup_keyring_file, settings.backup_key_bytes, settings.backup_dir)


def read_key_ring(file: Path | None, env_key: bytes | None, backup_dir: Path, *,
                  missing_ok: bool = False) -> KeyRing:
    """The ring from its parts. `missing_ok`: a file not created yet is an empty one (rotate, list)."""
    keys: list[Key] = []
    if file is not None:
        file = Path(file).expanduser()
        check_location(file, backup_dir)
        if file.exists() or not missing_ok:
            keys = _read_file(file)
    if env_key is not None and key_id(env_key) not in {k.id for k in keys}:
        keys.insert(0, _key(env_key, None, ENV_SOURCE))  # the oldest: the key from before the ring
    return KeyRing(tuple(keys), file)


def check_location(file: Path, backup_dir: Path) -> None:
    """Refuse a ring file inside BACKUP_DIR: whoever copies or steals the backups must not get the keys."""
    ring, backups = _resolved(file), _resolved(Path(backup_dir))
    if ring == backups or backups in ring.parents:
        raise KeyRingFileError(f"BACKUP_KEYRING_FILE {file} is inside BACKUP_DIR {backup_dir}: keep the keys "
                               "apart from the backups they open (another disk, a secret store)")


def _resolved(path: Path) -> Path:
    """The absolute path with every symlink of its existing part resolved (the rest may not exist yet)."""
    return path.expanduser().absolute().resolve(strict=False)


def _read_file(file: Path) -> list[Key]:
    try:
        info = file.stat()
    except FileNotFoundError:
        raise KeyRingFileError(f"BACKUP_KEYRING_FILE {file} does not exist; create it with "
                               "`orchestrator-data backup keys rotate`") from None
    except OSError as exc:
        raise KeyRingFileError(f"BACKUP_KEYRING_FILE {file} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyRingFileError(f"BACKUP_KEYRING_FILE {file} is not a regular file")
    if info.st_mode & 0o077:
        raise KeyRingFileError(f"BACKUP_KEYRING_FILE {file} is open to group or others "
                               f"(mode {stat.S_IMODE(info.st_mode):04o}); run chmod 600 {file}")
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise KeyRingFileError(f"BACKUP_KEYRING_FILE {file} is not a readable key ring "
                               f"({type(exc).__name__})") from None
    if not isinstance(document, dict) or document.get("format") != RING_FORMAT \
            or not isinstance(document.get("keys"), list):
        raise KeyRingFileError(f"BACKUP_KEYRING_FILE {file} is not a key ring of format {RING_FORMAT}")
    keys = []
    for number, item in enumerate(document["keys"], start=1):
        keys.append(_entry(file, number, item))
    if len({k.id for k in keys}) != len(keys):
        raise KeyRingFileError(f"BACKUP_KEYRING_FILE {file} holds the same key twice")
    return keys


def _entry(file: Path, number: int, item: object) -> Key:
    where = f"BACKUP_KEYRING_FILE {file}, key {number}"
    if not isinstance(item, dict) or not isinstance(item.get("key"), str):
        raise KeyRingFileError(f"{where}: not an object with a base64 `key`")
    try:
        material = base64.b64decode(item["key"], validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingFileError(f"{where}: `key` is not valid base64") from None
    if len(material) != KEY_BYTES:
        raise KeyRingFileError(f"{where}: `key` decodes to {len(material)} bytes; expected {KEY_BYTES}")
    created = item.get("created_at")
    try:
        created_at = datetime.fromisoformat(created) if isinstance(created, str) else None
    except ValueError:
        raise KeyRingFileError(f"{where}: `created_at` is not an ISO 8601 time") from None
    key = _key(material, created_at, str(item.get("source") or ROTATE_SOURCE))
    # an id that does not match its key is a hand-edited ring: the backups that name it would not open
    if item.get("id") not in (None, key.id):
        raise KeyRingFileError(f"{where}: the recorded id {item.get('id')} is not the id of its key ({key.id})")
    return key


@dataclass
class Rotation:
    key: Key                         # the new current key (its id is safe to print; never its material)
    count: int                       # keys in the ring now
    imported: Key | None             # BACKUP_ENCRYPTION_KEY, recorded in the file by this rotation
    file: Path


def rotate_key(file: Path | None, env_key: bytes | None, backup_dir: Path) -> Rotation:
    """Append a new random 32-byte key to the ring file (creating it), which makes it the current key.
    Raises KeyRingFileError when BACKUP_KEYRING_FILE is unset, inside BACKUP_DIR, not private, or its
    folder does not exist."""
    if file is None:
        raise KeyRingFileError("BACKUP_KEYRING_FILE is unset: set it to a file outside BACKUP_DIR "
                               "(e.g. /etc/orchestrator-data/backup-keys.json) before rotating")
    file = Path(file).expanduser()
    check_location(file, backup_dir)
    if not file.parent.is_dir():
        raise KeyRingFileError(f"BACKUP_KEYRING_FILE {file}: the folder {file.parent} does not exist")
    with _locked(file):
        existing = read_key_ring(file, None, backup_dir, missing_ok=True).keys
        imported = None
        if env_key is not None and key_id(env_key) not in {k.id for k in existing}:
            imported = _key(env_key, None, ENV_SOURCE)
            existing = (imported, *existing)
        new = _key(os.urandom(KEY_BYTES), datetime.now(UTC), ROTATE_SOURCE)
        keys = (*existing, new)
        _write_ring(file, keys)
    return Rotation(new, len(keys), imported, file)


@contextlib.contextmanager
def _locked(file: Path) -> Iterator[None]:
    """An exclusive lock beside the ring, so two rotations never lose each other's key."""
    lock = file.with_name(f".{file.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_ring(file: Path, keys: tuple[Key, ...]) -> None:
    document = {"format": RING_FORMAT, "keys": [
        {**k.describe(), "key": base64.b64encode(k.material).decode()} for k in keys]}
    # private (0600) before the first byte of a key is written, then renamed over the ring
    write_atomically(file, json.dumps(document, indent=2) + "\n", mode=0o600)


@dataclass
class KeyUse:
    key: Key | None                  # None: a key the backups name that the ring does not hold
    key_id: str
    current: bool
    dumps: int                       # logical dumps in BACKUP_DIR encrypted with it
    base_backups: int = 0            # base backups of the point-in-time recovery chain
    wal_segments: int = 0            # WAL files of its archive

    @property
    def uses(self) -> int:
        return self.dumps + self.base_backups + self.wal_segments

    def as_dict(self) -> dict:
        described = self.key.describe() if self.key else {"id": self.key_id, "created_at": None, "source": None}
        return {**described, "current": self.current, "in_ring": self.key is not None, "dumps": self.dumps,
                "base_backups": self.base_backups, "wal_segments": self.wal_segments}


def key_usage(ring: KeyRing, backup_dir: Path, physical: Mapping[str, tuple[int, int]] | None = None) -> list[KeyUse]:
    """Every key of the ring (oldest first) with the number of dumps that use it (and of base backups and
    WAL files, from `physical`: key id -> (base backups, WAL files)), then every key id they name that
    the ring lacks (those cannot be opened)."""
    counts: dict[str, int] = {}
    for entry in list_backups(backup_dir):
        encryption = entry.manifest.get("encryption") or {}
        if encryption.get("key_id"):
            counts[encryption["key_id"]] = counts.get(encryption["key_id"], 0) + 1
    physical = dict(physical or {})
    current = ring.current.id if ring.current else None
    uses = [KeyUse(k, k.id, k.id == current, counts.pop(k.id, 0), *physical.pop(k.id, (0, 0))) for k in ring.keys]
    for missing in sorted(counts.keys() | physical.keys()):
        uses.append(KeyUse(None, missing, False, counts.get(missing, 0), *physical.get(missing, (0, 0))))
    return uses
