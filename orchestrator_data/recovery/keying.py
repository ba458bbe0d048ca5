"""The one place the recovery chain gets its keys: the backup key ring (backups/keys.py), the same ring
as the logical dumps'. New base backups and WAL segments are encrypted with its current key; each is
read back with the key its manifest (or its file name, for a WAL segment) names."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from orchestrator_data.backups.keys import load_key_ring


def current_key(settings) -> bytes | None:
    current = load_key_ring(settings).current
    return current.material if current is not None else None


def key_lookup(settings) -> Callable[[str], bytes]:
    """key id → key material; BackupKeyError (exit 2) naming the id when the ring does not hold it."""
    return load_key_ring(settings).get


def key_usage(layout) -> dict[str, tuple[int, int]]:
    """key id -> (base backups, WAL files) of the chain encrypted with it: a key may be retired only when
    nothing kept names it (`backup keys list`)."""
    from orchestrator_data.recovery.base_backups import list_base_backups
    from orchestrator_data.recovery.wal import ENCRYPTED_SUFFIX

    base = Counter(b.key_id for b in list_base_backups(layout) if b.key_id)
    wal: Counter[str] = Counter()
    if layout.wal.is_dir():
        for path in layout.wal.glob(f"*{ENCRYPTED_SUFFIX}"):
            name = path.name[: -len(ENCRYPTED_SUFFIX)]
            if not path.name.startswith(".") and "." in name:
                wal[name.rsplit(".", 1)[1]] += 1
    return {kid: (base[kid], wal[kid]) for kid in base.keys() | wal.keys()}
