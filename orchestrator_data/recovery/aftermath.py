"""After the database moved back in time, the rest of the data layer agrees with it at once.

Whatever moved it — `recovery restore --in-place`, a logical restore over the live database, a
failover to a lagging standby — Elasticsearch and Redis still hold what was derived from the lost
future. The search sync would notice by itself at its next run (search/history.py), but until then
documents from after the recovery point stay searchable; Redis never would. `bring_in_line` is called
right after such a recovery, before the application is let back in:

1. GDPR: the erasure ledger kept outside the database (gdpr/ledger.py) is re-applied first, so that
   an erased person is erased again before any index is rebuilt from the rows.
2. Search: every synced index that exists is rebuilt now from the recovered rows (beside the live one,
   aliases swapped at once: search/rebuild.py), under its lock. Before the rebuild, the documents the
   recovered database no longer explains are counted: `removed` (no live row) and `rewritten` (a row
   whose version differs from the document's — from the future, or one the rebuild puts back).
3. Redis: the state derived from executions and users that no longer exist is dropped, and the whole
   cache (redis/recovered.py says what is kept and why).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field

import sqlalchemy as sa
from elasticsearch import Elasticsearch, helpers

from orchestrator_data.errors import BadInput
from orchestrator_data.search.errors import elasticsearch_errors
from orchestrator_data.search.indices import Layout, layout_of, write_index
from orchestrator_data.search.locks import index_lock
from orchestrator_data.search.rebuild import rebuild
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import SYNCED, batched, changes_for, source_of

log = logging.getLogger(__name__)

# a sync of the index holds its lock for seconds; a rebuild beside it for longer: wait, then fail
LOCK_WAIT_S = 300.0


@dataclass
class IndexAftermath:
    index: str
    documents_before: int
    removed: int          # documents without a live row in the recovered database
    rewritten: int        # documents whose row has another version (the rebuild writes the row's)
    documents_after: int
    duration_s: float
    sync: SyncReport      # the rebuild's own report (what the documents asset records)

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "sync"} | {"mode": self.sync.mode,
                                                                           "new_watermark": self.sync.watermark_to}


@dataclass
class AftermathReport:
    reason: str
    search: list[IndexAftermath] = field(default_factory=list)
    redis: dict[str, int] | None = None       # keys and entries dropped, by kind; None: Redis not configured
    gdpr: dict | None = None                  # the erasure ledger re-applied (gdpr/reapply.py ReapplyReport)
    not_configured: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        return {"reason": self.reason, "gdpr": self.gdpr, "search": {i.index: i.as_dict() for i in self.search},
                "redis": self.redis, "not_configured": self.not_configured, "duration_s": round(self.duration_s, 3)}


def _ids_and_versions(client: Elasticsearch, alias: str) -> Iterator[list[tuple[str, int]]]:
    hits = helpers.scan(client, index=alias, query={"query": {"match_all": {}}, "version": True}, _source=False,
                        size=1000)
    for batch in batched(hits):
        yield [(hit["_id"], hit["_version"]) for hit in batch]


def count_unexplained(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str) -> tuple[int, int, int]:
    """(documents, removed, rewritten): every document of the index against the recovered rows."""
    src = source_of(name)
    alias = layout.read_alias(name)
    client.indices.refresh(index=alias)
    documents = removed = rewritten = 0
    with engine.connect() as conn:
        for batch in _ids_and_versions(client, alias):
            rows = {c.id: c for c in changes_for(conn, src, [doc_id for doc_id, _ in batch])}
            documents += len(batch)
            for doc_id, version in batch:
                row = rows[doc_id]
                if row.document is None:
                    removed += 1
                elif row.version != version:
                    rewritten += 1
    return documents, removed, rewritten


def rebuild_index(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str, reason: str) -> IndexAftermath:
    """Count what the recovered database no longer explains, then rebuild the index from its rows."""
    alias = layout.read_alias(name)
    started = time.monotonic()
    with elasticsearch_errors(f"rebuild of {alias} after a recovery"), index_lock(engine, alias, LOCK_WAIT_S):
        before, removed, rewritten = count_unexplained(engine, client, layout, name)
        report = SyncReport(name, "rebuild", None, 0, reason=f"brought in line after a recovery: {reason}")
        rebuild(engine, client, layout, name, report, started)
        report.duration_s = time.monotonic() - started
        client.indices.refresh(index=alias)
        after = client.count(index=alias)["count"]
    log.info("%s rebuilt after a recovery: %d documents without a row removed, %d rewritten, %d -> %d", alias,
             removed, rewritten, before, after)
    return IndexAftermath(name, before, removed, rewritten, after, report.duration_s, report)


def bring_search_in_line(engine: sa.Engine, client: Elasticsearch, layout: Layout, reason: str) -> list[IndexAftermath]:
    """Rebuild every synced index that exists (none is created here)."""
    return [rebuild_index(engine, client, layout, name, reason) for name in SYNCED
            if write_index(client, layout, name) is not None]


def _existing(engine: sa.Engine, table: str):
    """Which of some ids (UUIDs as text) `table` has: the database's answer for redis/recovered.py."""
    def ask(ids: list[str]) -> set[str]:
        with engine.connect() as conn:
            return {str(i) for i in conn.execute(sa.text(f"SELECT id FROM {table} WHERE id = ANY(CAST(:ids AS uuid[]))"),
                                                 {"ids": ids}).scalars()}
    return ask


def bring_redis_in_line(engine: sa.Engine, client, before_ms: int) -> dict[str, int]:
    from orchestrator_data.redis.recovered import drop_state_of_the_lost_future

    return drop_state_of_the_lost_future(client, _existing(engine, "executions"), _existing(engine, "users"),
                                         before_ms).as_dict()


def bring_in_line(settings, reason: str) -> AftermathReport:
    """After any recovery over the live database: the GDPR erasure ledger re-applied, search rebuilt now for
    every synced index, Redis state of executions and users that no longer exist dropped (and the cache). Raises BadInput for an empty reason or
    no database; a server's failure as its own error (OperationFailed family, exit 1)."""
    from orchestrator_data import connections
    from orchestrator_data.gdpr.reapply import reapply_erasures_with

    reason = " ".join(reason.split())
    if not reason:
        raise BadInput("a reason is required: say what moved the database back (e.g. 'PITR to 14:02:59')")
    started, before_ms = time.monotonic(), int(time.time() * 1000)
    report = AftermathReport(reason)
    urls = {service: None for service in ("redis", "elasticsearch")}
    for service in urls:
        with suppress(connections.ServiceNotConfigured):
            urls[service] = connections.resolve_url(service, settings)
    report.not_configured = [service for service, url in urls.items() if url is None]
    with ExitStack() as closing:
        engine = connections.postgres_engine(settings, application_name="orchestrator-data-aftermath")
        closing.callback(engine.dispose)
        report.gdpr = reapply_erasures_with(settings, engine).as_dict()
        if urls["elasticsearch"] is not None:
            client = connections.elasticsearch_client(settings, urls["elasticsearch"])
            closing.callback(client.close)
            report.search = bring_search_in_line(engine, client, layout_of(settings), reason)
        if urls["redis"] is not None:
            redis_client = connections.redis_client(settings, urls["redis"])
            closing.callback(redis_client.close)
            report.redis = bring_redis_in_line(engine, redis_client, before_ms)
    report.duration_s = time.monotonic() - started
    return report
