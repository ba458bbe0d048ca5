"""What an index holds against what its table holds: every document (with its version) of a read
alias, and the ids of the rows a synced index should have. Shared by the sync's tests and those of a
database that went back in time."""

from __future__ import annotations

import sqlalchemy as sa
from elasticsearch import Elasticsearch

TABLE = {"workflows": "workflows", "executions": "executions", "marketplace": "marketplace_items",
         "audit_logs": "audit_logs"}


def documents(es: Elasticsearch, layout, name: str) -> dict[str, dict]:
    es.indices.refresh(index=layout.read_alias(name))
    found = es.search(index=layout.read_alias(name), size=10_000, query={"match_all": {}}, version=True)
    return {hit["_id"]: hit for hit in found["hits"]["hits"]}


def rows(engine, name: str) -> set[str]:
    where = " WHERE deleted_at IS NULL" if name in ("workflows", "marketplace") else ""
    with engine.connect() as conn:
        return {str(i) for i in conn.execute(sa.text(f"SELECT id FROM {TABLE[name]}{where}")).scalars()}
