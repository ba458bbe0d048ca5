"""The search sync against raw bulk loads of the same documents, in the same run on the same node.

1. full sync of N seeded executions (server-side cursor, versions, bulk) into a fresh index;
2. baseline: the same N documents, built in memory beforehand, bulk-loaded into another fresh index
   with the same mapping (no PostgreSQL, no versions, no lookups) — the node's raw bulk rate;
3. incremental sync of 1,000 changed rows out of N, against the full sync's time.

Goals: full sync >= 0.7 of the raw bulk rate; the incremental run <= 3 % of the full sync's time;
peak RSS growth of the sync under 200 MB (getrusage, this process).

    python -m bench.search_sync [--scale 1000000]
"""

from __future__ import annotations

import argparse
import resource
import time
import uuid

import sqlalchemy as sa
from elasticsearch import helpers

from bench.seed import scratch_database
from orchestrator_data import connections
from orchestrator_data.postgres.client import create_engine
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import indices, sources, sync
from orchestrator_data.settings import load_settings

CHANGED = 1000


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(scale: int = 1_000_000) -> None:
    settings = load_settings()
    client = connections.elasticsearch_client(settings, request_timeout=120)
    synced, raw = indices.Layout(f"bs{uuid.uuid4().hex[:8]}"), indices.Layout(f"br{uuid.uuid4().hex[:8]}")
    base = connections.resolve_url("postgres", settings)
    try:
        with scratch_database(base) as url:
            engine = create_engine(url)
            seed(engine, "development", SeedPlan(executions=scale))
            for layout in (synced, raw):
                indices.init_indices(client, layout, ("executions",))

            rss_before = _rss_mib()
            started = time.perf_counter()
            full = sync.sync_index(engine, client, synced, "executions")
            full_seconds = time.perf_counter() - started
            sync_rss = _rss_mib() - rss_before

            # the baseline's documents are built before the clock starts
            with engine.connect() as conn:
                documents = [sources.row_change(row)
                             for row in conn.execute(sa.text(sources.source_of("executions").select)).mappings()]
            target = indices.write_index(client, raw, "executions")
            started = time.perf_counter()
            for ok, _ in helpers.streaming_bulk(client, ({"_index": target, "_id": d.id, "_source": d.document}
                                                         for d in documents), chunk_size=sources.BATCH):
                assert ok
            raw_seconds = time.perf_counter() - started
            del documents

            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE executions SET status = 'cancelled' WHERE id IN "
                                     "(SELECT id FROM executions ORDER BY id LIMIT :n)"), {"n": CHANGED})
            started = time.perf_counter()
            incremental = sync.sync_index(engine, client, synced, "executions")
            incremental_seconds = time.perf_counter() - started
            engine.dispose()
    finally:
        for layout in (synced, raw):
            indices.drop_indices(client, layout, ("executions",))
        client.close()

    full_rate, raw_rate = full.documents_written / full_seconds, scale / raw_seconds
    print(f"full sync   {full.documents_written:,} documents in {full_seconds:7.2f} s = {full_rate:9,.0f} docs/s, "
          f"peak RSS grew {sync_rss:.0f} MiB (goal < 200)")
    print(f"raw bulk    {scale:,} prebuilt documents in {raw_seconds:7.2f} s = {raw_rate:9,.0f} docs/s")
    print(f"ratio full sync / raw bulk = {full_rate / raw_rate:.2f} (goal >= 0.70)")
    print(f"incremental {incremental.documents_written:,} of {scale:,} changed in {incremental_seconds:.2f} s = "
          f"{incremental_seconds / full_seconds:.1%} of the full sync (goal <= 3 %)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1_000_000)
    main(parser.parse_args().scale)
