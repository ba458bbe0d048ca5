"""Full or incremental: the kind of the next scheduled base backup.

A restore unpacks every piece of its chain — the full backup and each incremental after it — so what a
restore reads grows with the incrementals' sizes, while a full backup costs the server a read of the
whole cluster and its full size in storage. The next backup is full when there is none to build on, when
the newest full is older than `full_every_days`, or when the incrementals since it already add up to
`chain_share` of its size (a restore of the next one would unpack more than 1 + chain_share times the
full's bytes); incremental otherwise. docs/recovery.md ("Full or incremental") gives the measurements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator_data.recovery.base_backups import BaseBackup


@dataclass(frozen=True)
class Decision:
    kind: str          # full | incremental
    reason: str
    chain_bytes: int   # the incrementals since the newest full, stored bytes
    full_bytes: int    # that full's stored bytes (0: none)


def next_kind(backups: list[BaseBackup], now: datetime, *, full_every_days: float, chain_share: float) -> Decision:
    """The kind of the next base backup, given the complete ones (oldest first) of this cluster and timeline:
    an incremental builds on the newest of them (take_base_backup)."""
    if not backups:
        return Decision("full", "no base backup to build on", 0, 0)
    by_id = {b.id: b for b in backups}
    chain, piece = [], backups[-1]
    while piece is not None:
        chain.insert(0, piece)
        piece = by_id.get(piece.parent) if piece.parent else None
    full = chain[0]
    if full.kind != "full":
        return Decision("full", f"the chain of {backups[-1].id} lacks its full backup", 0, 0)
    incrementals = sum(b.size_bytes for b in chain[1:])
    if full.finished_at < now - timedelta(days=full_every_days):
        return Decision("full", f"the newest full base backup {full.id} is older than {full_every_days:g} days",
                        incrementals, full.size_bytes)
    if incrementals >= chain_share * full.size_bytes:
        return Decision("full", f"the {len(chain) - 1} incremental(s) since {full.id} add up to "
                                f"{incrementals / max(full.size_bytes, 1):.0%} of its size "
                                f"(BASE_BACKUP_CHAIN_SHARE {chain_share:.0%})", incrementals, full.size_bytes)
    return Decision("incremental", f"{len(chain) - 1} incremental(s) since {full.id}, "
                                   f"{incrementals / max(full.size_bytes, 1):.0%} of its size",
                    incrementals, full.size_bytes)
