"""Where each index stands, for `search status`, the Dagster metadata and the reconciliation checks:
its alias and backing indices, mapping version, documents and size in Elasticsearch, rows in
PostgreSQL, and how far the sync is behind."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.search.indices import NAMES, IndexStatus, Layout, index_status
from orchestrator_data.search.sources import SOURCES, postgres_rows
from orchestrator_data.search.watermarks import lag as sync_lag


@dataclass
class IndexReport(IndexStatus):
    """An index's status in Elasticsearch, and for a synced one its PostgreSQL side and lag."""

    synced: bool = False                 # fed from PostgreSQL (system_metrics is not)
    postgres_rows: int | None = None
    lag_seconds: float | None = None
    lag_rows: int | None = None
    watermark: int | None = None
    synced_at: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def index_report(engine: sa.Engine | None, client: Elasticsearch, layout: Layout, name: str) -> IndexReport:
    report = IndexReport(**vars(index_status(client, layout, name)), synced=name in SOURCES)
    if report.synced and engine is not None:
        report.postgres_rows = postgres_rows(engine, name)
        lag = sync_lag(engine, layout, name)
        report.lag_rows, report.lag_seconds, report.watermark = lag.rows_behind, lag.seconds_behind, lag.watermark
        report.synced_at = lag.synced_at.isoformat() if lag.synced_at else None
    return report


def search_status(engine: sa.Engine | None, client: Elasticsearch, layout: Layout,
                  names: tuple[str, ...] = NAMES) -> list[IndexReport]:
    return [index_report(engine, client, layout, name) for name in names]


def as_json(reports: list[IndexReport]) -> dict:
    return {"indices": {r.name: {"alias": r.alias, "exists": r.exists, "backing_indices": r.backing_indices,
                                 "mapping_version": r.mapping_version, "documents": r.documents,
                                 "size_bytes": r.size_bytes, "postgres_rows": r.postgres_rows,
                                 "lag_seconds": r.lag_seconds, "lag_rows": r.lag_rows, "watermark": r.watermark,
                                 "synced_at": r.synced_at}
                        for r in reports}}
