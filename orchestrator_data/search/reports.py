"""What one sync, reindex, repair or partition load did: the counters the bulk writes fill in and the
watermark the run moved."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class SyncReport:
    index: str
    # "full" | "incremental" | "rebuild" (rows rewritten behind the audit trail) | "after_full_load" | "reindex"
    # | "repair" | "partition"
    mode: str
    watermark_from: int | None
    watermark_to: int
    rows_read: int = 0
    documents_written: int = 0
    documents_deleted: int = 0
    stale_skipped: int = 0          # Elasticsearch already had a newer version
    retried: int = 0
    duration_s: float = 0.0
    mapping_version: int = 0
    written_to: dict[str, int] = field(default_factory=dict)  # backing index -> documents written there
    reason: str = ""                # why a rebuild: which tables were rewritten behind the audit trail, by what

    @property
    def documents_per_s(self) -> float:
        return (self.documents_written + self.documents_deleted) / self.duration_s if self.duration_s else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"documents_per_s": round(self.documents_per_s, 1)}
