"""A mapping change without downtime: `reindex` builds the index again, beside the live one, from
PostgreSQL, and swaps the aliases in one atomic request.

1. Under the index's sync lock (no other sync writes meanwhile), create the next backing index — the
   definition's mapping version, the next free generation — with no alias, so searches never see it
   half-built.
2. Load every row into it in one snapshot, then catch up, pass after pass, on the changes made since
   (each pass reads from the previous pass's xmin), until a pass finds little left.
3. In one `_aliases` request, move the read and write aliases from the old backing indices to the new
   one. A search runs against the old indices or the new one, never against neither or both.
4. Record the watermark of the last pass (changes committed after it are the next sync's), then
   delete the old backing indices.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.search import sync
from orchestrator_data.search.errors import SearchError, elasticsearch_errors
from orchestrator_data.search.indices import Layout, definition, write_index
from orchestrator_data.search.locks import index_lock
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import source_of
from orchestrator_data.search.watermarks import save_state

CATCH_UP_PASSES = 5
SMALL_ENOUGH = 1000  # a catch-up pass that read fewer rows than this is the last one before the swap


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


def _next_backing(client: Elasticsearch, layout: Layout, name: str, version: int) -> str:
    existing = client.indices.get(index=layout.pattern(name), allow_no_indices=True, expand_wildcards="all")
    generations = [int(m.group(1)) for index in existing
                   if (m := re.fullmatch(rf"{re.escape(layout.prefix)}-{re.escape(name)}-v{version}-(\d{{6}})", index))]
    return layout.backing(name, version, max(generations, default=0) + 1)


def reindex(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str,
            on_progress: Callable[[SyncReport], None] | None = None) -> ReindexReport:
    src = source_of(name)
    alias = layout.read_alias(name)
    started = time.monotonic()
    version = definition(name).version
    with elasticsearch_errors(f"reindex of {alias}"), index_lock(engine, alias):
        if write_index(client, layout, name) is None:
            raise SearchError(f"index {alias} does not exist: run `orchestrator-data search init`")
        old = sorted(client.indices.get_alias(name=alias))
        new = _next_backing(client, layout, name, version)
        client.indices.create(index=new)  # the template gives it the definition's mappings and settings
        try:
            report = SyncReport(name, "reindex", None, 0, mapping_version=version)
            watermark = sync.load_into(engine, client, layout, src, None, [new], new, report, started, on_progress)
            passes = caught_up = 0
            while passes < CATCH_UP_PASSES:
                before = report.rows_read
                watermark = sync.load_into(engine, client, layout, src, watermark, [new], new, report, started,
                                       on_progress)
                passes += 1
                caught_up += report.rows_read - before
                if report.rows_read - before < SMALL_ENOUGH:
                    break
            client.indices.refresh(index=new)
            actions = [{"remove": {"index": index, "alias": a}} for index in old
                       for a in (alias, layout.write_alias(name))
                       if a in client.indices.get_alias(index=index)[index]["aliases"]]
            actions += [{"add": {"index": new, "alias": alias}},
                        {"add": {"index": new, "alias": layout.write_alias(name), "is_write_index": True}}]
            client.indices.update_aliases(actions=actions)
        except BaseException:
            client.options(ignore_status=404).indices.delete(index=new)  # the live index was never touched
            raise
        report.watermark_to = watermark
        save_state(engine, alias, report)
        client.indices.delete(index=",".join(old))
        documents = client.count(index=alias)["count"]
    return ReindexReport(name, old, new, version, documents, passes, caught_up, time.monotonic() - started, watermark)
