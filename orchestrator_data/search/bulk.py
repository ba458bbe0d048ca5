"""Writing documents into an index: versioned bulk writes, each to the backing index that already
holds the document, retried until Elasticsearch acknowledged every one.

* **One copy per document**: a document that already exists is rewritten in the backing index that
  holds it (found through the read alias), never through the write alias into a second one.
* **Never back in time**: every write carries the row's external version; Elasticsearch refuses an
  older one (a 409, counted as already current).
* A failed document is retried with backoff; if it still fails, SyncError names it.
"""

from __future__ import annotations

from elasticsearch import Elasticsearch, helpers
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from orchestrator_data.search.errors import SyncError
from orchestrator_data.search.indices import Layout, write_index
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import BATCH, Change

RETRIES = 4


class _Retryable(Exception):
    """Some documents of the batch failed: tenacity writes those again."""


def locate(client: Elasticsearch, layout: Layout, name: str, ids: list[str], backing: list[str]) -> dict[str, str]:
    """The backing index holding each of `ids` that exists already."""
    if len(backing) <= 1:  # one backing index: wherever a document is, it is there
        return {}
    found = client.search(index=layout.read_alias(name), query={"ids": {"values": ids}}, size=len(ids),
                          source=False, request_cache=False)
    return {hit["_id"]: hit["_index"] for hit in found["hits"]["hits"]}


def bulk_actions(changes: list[Change], located: dict[str, str], target: str, missing: frozenset[str]) -> list[dict]:
    """One bulk action per change: a versioned index or delete where the document lives (else `target`)."""
    actions = []
    for change in changes:
        where = located.get(change.id, target)
        if change.id in missing and change.document is not None:
            # put back a document someone deleted by hand: its tombstone may carry a version above the
            # row's, so it is created unversioned (the next versioned write still supersedes it)
            actions.append({"_op_type": "create", "_index": where, "_id": change.id, "_source": change.document})
        elif change.document is None:
            actions.append({"_op_type": "delete", "_index": where, "_id": change.id, "version": change.version,
                            "version_type": "external"})
        else:
            actions.append({"_op_type": "index", "_index": where, "_id": change.id, "version": change.version,
                            "version_type": "external", "_source": change.document})
    return actions


def write_changes(client: Elasticsearch, layout: Layout, name: str, changes: list[Change], report: SyncReport,
                  backing: list[str], target: str, missing: frozenset[str] = frozenset()) -> None:
    """Write one batch; returns once Elasticsearch acknowledged every document (or raises). `missing`:
    ids known to be absent from the index (repair), written without a version."""
    pending = bulk_actions(changes, locate(client, layout, name, [c.id for c in changes], backing), target, missing)
    attempt = 0
    for attempt_ctx in Retrying(stop=stop_after_attempt(RETRIES), wait=wait_exponential(multiplier=0.2, max=5),
                                retry=retry_if_exception_type(_Retryable), reraise=True):
        with attempt_ctx:
            attempt += 1
            failed = []
            for ok, item in helpers.streaming_bulk(client, pending, chunk_size=BATCH, raise_on_error=False,
                                                   raise_on_exception=False, max_retries=2):
                op, result = next(iter(item.items()))
                status = result.get("status", 0)
                error = (result.get("error") or {}).get("type", "")
                if ok:
                    if op == "delete":
                        report.documents_deleted += 1
                    else:
                        report.documents_written += 1
                        report.written_to[result["_index"]] = report.written_to.get(result["_index"], 0) + 1
                elif status == 409 and error == "version_conflict_engine_exception":
                    report.stale_skipped += 1      # already at this version or newer: nothing to do
                elif status == 404 and op == "delete":
                    report.documents_deleted += 1  # not there: already deleted
                else:
                    failed.append((result.get("_id"), status, error))
            if failed:
                ids = {f[0] for f in failed}
                pending = [a for a in pending if a["_id"] in ids]
                report.retried += len(pending)
                if attempt >= RETRIES:
                    shown = "; ".join(f"{i}: {s} {e}" for i, s, e in failed[:5])
                    raise SyncError(f"{len(failed)} document(s) of {layout.read_alias(name)} were not written "
                                    f"after {RETRIES} attempts (first: {shown}); the watermark stays where it was")
                raise _Retryable()


def backing_indices(client: Elasticsearch, layout: Layout, name: str) -> tuple[list[str], str]:
    """Every backing index behind the read alias, and the write index; SyncError when there is none."""
    target = write_index(client, layout, name)
    if target is None:
        raise SyncError(f"index {layout.read_alias(name)} does not exist: run `orchestrator-data search init`")
    backing = sorted(client.indices.get_alias(name=layout.read_alias(name)))
    return backing, target
