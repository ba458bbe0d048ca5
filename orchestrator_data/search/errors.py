"""The search domain's errors, and the one place an Elasticsearch client error becomes one of them.

Every message is one line, names what is wrong and is safe to print (no URL, no credential)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from elasticsearch import ApiError, TransportError

from orchestrator_data.errors import OperationFailed
from orchestrator_data.search.names import NAMES


# what a failed lifecycle request leaves behind: Elasticsearch applies a rollover or a delete whole or not at all
NOTHING_CHANGED = "nothing was changed by the failed request"


class SearchError(OperationFailed):
    """A search operation that cannot be done; the message names what is wrong and is safe to print."""


class UnknownIndex(SearchError):
    def __init__(self, name: str):
        super().__init__(f"unknown index '{name}'; known: {', '.join(NAMES)}")


class InvalidDefinition(SearchError):
    """A data file under search/indices/ that is malformed; the message names the file and the field."""


class SyncError(SearchError):
    """The sync could not finish; the watermark stayed where it was."""


class SyncBusy(SyncError):
    """The index's lock is taken by another sync, reindex, rollover, snapshot or full load."""


class SyncDeferred(SyncBusy):
    """The incremental sync stands aside for a partitioned full load (running, or begun and not yet
    covering every row): the Dagster asset skips instead of failing."""


@contextmanager
def elasticsearch_errors(what: str, error: type[Exception] = SyncError,
                         consequence: str = "the watermark stays where it was") -> Iterator[None]:
    """An Elasticsearch error inside the block becomes `error` with one printable line."""
    try:
        yield
    except (ApiError, TransportError) as exc:
        reason = str(getattr(exc, "message", None) or exc)[:300]
        raise error(f"{what} failed: Elasticsearch: {type(exc).__name__}: {reason}"
                    + (f"; {consequence}" if consequence else "")) from exc
