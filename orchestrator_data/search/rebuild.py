"""Rebuilding an index from PostgreSQL, so that it ends exactly equal to the rows: no orphan, no
document newer than its row, none missing — whatever rewrote the rows or the documents before.

An incremental sync can only apply what the audit trail says changed, and versions keep it from ever
writing a document back to an older state. Both are right while the rows only move forward; neither
helps once rows were rewritten behind the audit trail (a seed, which pauses it), re-created with a
lower row_version than their document's, or once documents were written or left behind by anything
else. A rebuild does not patch the live index; it builds the index again beside it:

1. Under the index's lock (held by the caller), create the next backing index — the definition's
   mapping version, the next free generation — with no alias, so searches never see it half-built.
2. Load every row into it in one snapshot; remember that snapshot (search_sync_state.rebuilt_snapshot):
   every REWRITE mark it could see is in the new index.
3. Catch up, pass after pass, on what changed since (each pass reads from the previous pass's xmin),
   until a pass finds little left. A pass whose window holds a REWRITE mark the load could not see
   starts the rebuild over: the rows it speaks for may be anywhere.
4. Stamp the new index with a new writer (history.py), then, in one `_aliases` request, move the read
   and write aliases from the old backing indices to the new one — a search runs against the old
   indices or the new one, never neither or both — record the watermark and the writer, then delete
   the old backing indices.

An index that has never been written at all (just created: no document, no delete, so no version to
collide with) is loaded in place instead: there is nothing in it that could be wrong.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.search.bulk import backing_indices
from orchestrator_data.search.errors import SyncError
from orchestrator_data.search.indices import Layout, definition
from orchestrator_data.search.loading import load_into
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import RewriteFound, source_of
from orchestrator_data.replication.timeline import position_of
from orchestrator_data.search.history import claim, database_writer, next_writer, stamp
from orchestrator_data.search.watermarks import load_state, save_state

log = logging.getLogger(__name__)

CATCH_UP_PASSES = 5
SMALL_ENOUGH = 1000  # a catch-up pass that read fewer rows than this is the last one before the swap
ATTEMPTS = 3         # rebuilds started over because rows were rewritten again meanwhile


@dataclass
class Rebuilt:
    old_indices: list[str]
    new_index: str
    in_place: bool
    catch_up_passes: int = 0
    caught_up_rows: int = 0


def next_backing(client: Elasticsearch, layout: Layout, name: str, version: int) -> str:
    existing = client.indices.get(index=layout.pattern(name), allow_no_indices=True, expand_wildcards="all")
    generations = [int(m.group(1)) for index in existing
                   if (m := re.fullmatch(rf"{re.escape(layout.prefix)}-{re.escape(name)}-v{version}-(\d{{6}})", index))]
    return layout.backing(name, version, max(generations, default=0) + 1)


def _never_written(client: Elasticsearch, layout: Layout, name: str, backing: list[str], version: int) -> bool:
    """One backing index of the current mapping that no document was ever written to or deleted from.
    (Statistics restart with the node, but so do the version tombstones of deleted documents.)"""
    if len(backing) != 1 or layout.version_of(name, backing[0]) != version:
        return False
    primaries = client.indices.stats(index=backing[0], metric="docs,indexing")["indices"][backing[0]]["primaries"]
    docs, indexing = primaries["docs"], primaries["indexing"]
    return docs["count"] == docs["deleted"] == indexing["index_total"] == indexing["delete_total"] == 0


def _restart(report: SyncReport) -> None:
    report.rows_read = report.documents_written = report.documents_deleted = report.stale_skipped = 0
    report.retried = 0
    report.written_to = {}


def rebuild(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str, report: SyncReport, started: float,
            on_progress: Callable[[SyncReport], None] | None = None, *, in_place_if_new: bool = True) -> Rebuilt:
    """Make `name` equal to PostgreSQL (the caller holds its lock); fills `report` (watermark_to included)
    and records the state. Raises SyncError when rows keep being rewritten through every attempt."""
    src = source_of(name)
    alias = layout.read_alias(name)
    version = definition(name).version
    report.mapping_version = version
    old, target = backing_indices(client, layout, name)
    state = load_state(engine, alias)
    if in_place_if_new and _never_written(client, layout, name, old, version):
        # written in place, it is live: its writer is claimed before the first document (history.py);
        # with no state row to claim in, or nothing written, the index is stamped and the writer recorded now
        claimed: list = []
        claim_first = (lambda: claimed.append(claim(engine, client, alias, old))) if state is not None else None
        loaded = load_into(engine, client, layout, src, None, old, target, report, started, on_progress,
                           before_writing=claim_first)
        report.watermark_to = loaded.xmin
        writer = None
        if not claimed:
            writer = next_writer(database_writer(state))
            stamp(client, old, writer, position_of(engine))
        save_state(engine, alias, report, rebuilt_snapshot=loaded.text, writer=writer)
        return Rebuilt(old, target, in_place=True)
    # out of sight until the swap: its writer is stamped just before, once every snapshot was read
    writer = next_writer(database_writer(state))
    for attempt in range(1, ATTEMPTS + 1):
        new = next_backing(client, layout, name, version)
        client.indices.create(index=new)  # the template gives it the definition's mappings and settings
        try:
            full = load_into(engine, client, layout, src, None, [new], new, report, started, on_progress)
            watermark, passes, caught_up = full.xmin, 0, 0
            while passes < CATCH_UP_PASSES:
                before = report.rows_read
                watermark = load_into(engine, client, layout, src, watermark, [new], new, report, started,
                                      on_progress, covered=full.text).xmin
                passes += 1
                caught_up += report.rows_read - before
                if report.rows_read - before < SMALL_ENOUGH:
                    break
            client.indices.refresh(index=new)
            stamp(client, [new], writer, position_of(engine))
            _swap(client, layout, name, old, new)
        except RewriteFound as found:
            client.options(ignore_status=404).indices.delete(index=new)
            log.warning("rebuild of %s started over (attempt %d): %s", alias, attempt, found)
            _restart(report)  # the old backing indices are the same: the caller's lock keeps the aliases still
            continue
        except BaseException:
            client.options(ignore_status=404).indices.delete(index=new)  # the live index was never touched
            raise
        report.watermark_to = watermark
        save_state(engine, alias, report, rebuilt_snapshot=full.text, writer=writer)
        client.indices.delete(index=",".join(old))
        return Rebuilt(old, new, in_place=False, catch_up_passes=passes, caught_up_rows=caught_up)
    raise SyncError(f"{alias} could not be rebuilt: its rows were rewritten behind the audit trail again during each "
                    f"of {ATTEMPTS} attempts (a seed or restore still running?); the live index was left as it was")


def _swap(client: Elasticsearch, layout: Layout, name: str, old: list[str], new: str) -> None:
    """Both aliases from the old backing indices to `new`, in one atomic request."""
    alias, write_alias = layout.read_alias(name), layout.write_alias(name)
    actions = [{"remove": {"index": index, "alias": a}} for index in old for a in (alias, write_alias)
               if a in client.indices.get_alias(index=index)[index]["aliases"]]
    actions += [{"add": {"index": new, "alias": alias}},
                {"add": {"index": new, "alias": write_alias, "is_write_index": True}}]
    client.indices.update_aliases(actions=actions)
