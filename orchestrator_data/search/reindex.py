"""A mapping change without downtime: `reindex` rebuilds the index beside the live one from PostgreSQL
and swaps the aliases in one atomic request (rebuild.py does the work; `search sync --full` runs the
same rebuild, loading in place only an index that was never written)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.search.errors import elasticsearch_errors
from orchestrator_data.search.indices import Layout
from orchestrator_data.search.locks import index_lock
from orchestrator_data.search.rebuild import rebuild
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import source_of


@dataclass
class ReindexReport:
    index: str
    old_indices: list[str]
    new_index: str
    mapping_version: int
    documents: int
    catch_up_passes: int
    caught_up_rows: int
    duration_s: float
    watermark: int


def reindex(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str,
            on_progress: Callable[[SyncReport], None] | None = None) -> ReindexReport:
    source_of(name)  # refuse an unknown or unsynced name before any work
    alias = layout.read_alias(name)
    started = time.monotonic()
    with elasticsearch_errors(f"reindex of {alias}"), index_lock(engine, alias):
        report = SyncReport(name, "reindex", None, 0)
        done = rebuild(engine, client, layout, name, report, started, on_progress, in_place_if_new=False)
        documents = client.count(index=alias)["count"]
    return ReindexReport(name, done.old_indices, done.new_index, report.mapping_version, documents,
                         done.catch_up_passes, done.caught_up_rows, time.monotonic() - started, report.watermark_to)
