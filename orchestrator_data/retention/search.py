"""Purged audit rows leave the audit index too.

Executions and purged workflows/marketplace items leave search through the sync (their DELETE audit
rows). The audit index is different: its documents ARE the audit rows and the sync only appends, so
the purge deletes the documents of the rows it deleted, by id, as soon as each batch committed.
"""

from __future__ import annotations

from collections.abc import Callable

from elasticsearch import Elasticsearch

from orchestrator_data.search.errors import elasticsearch_errors
from orchestrator_data.search.indices import Layout


def audit_document_deleter(client: Elasticsearch, layout: Layout) -> Callable[[list], int]:
    """ids -> how many of their documents were deleted from the audit index (every backing index)."""
    alias = layout.read_alias("audit_logs")

    def delete(ids: list) -> int:
        if not client.indices.exists_alias(name=alias):
            return 0  # no audit index in this cluster: nothing to keep in step
        with elasticsearch_errors("deleting purged audit documents",
                                  consequence="the rows are purged; their documents stay in the audit index until "
                                              "`search reindex audit_logs` rebuilds it from the rows"):
            done = client.delete_by_query(index=alias, query={"ids": {"values": [str(i) for i in ids]}},
                                          refresh=True, conflicts="proceed")
        return int(done.get("deleted", 0))

    return delete
