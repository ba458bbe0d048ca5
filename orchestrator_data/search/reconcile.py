"""Reconciliation: does an index hold what PostgreSQL says it should?

Two comparisons, both cheap enough for every sync run:
* documents per organization in Elasticsearch against rows per organization in PostgreSQL
  (soft-deleted rows excluded);
* a sample of rows (a fixed pseudo-random order: md5 of the id) rebuilt as documents the way the sync
  builds them, compared field by field with the stored documents; a hash over the whole sample says
  at a glance whether two runs saw the same thing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import sqlalchemy as sa
from elasticsearch import Elasticsearch, helpers

from orchestrator_data.search.bulk import backing_indices, write_changes
from orchestrator_data.search.indices import Layout
from orchestrator_data.search.query import count_by_organization, ids_of
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import batched, changes_for, source_of

SAMPLE = 200
NO_ORGANIZATION = ""  # audit rows of alerts, platform-wide metrics (as query.count_by_organization)


@dataclass
class Reconciliation:
    index: str
    postgres_rows: int
    documents: int
    organizations: int
    count_differences: dict[str, tuple[int, int]] = field(default_factory=dict)  # org -> (postgres, elasticsearch)
    sampled: int = 0
    sample_differences: list[str] = field(default_factory=list)  # "<id>: missing" / "<id>: field x differs"
    sample_hash: str = ""

    @property
    def ok(self) -> bool:
        return not self.count_differences and not self.sample_differences

    def as_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}


def postgres_counts(engine: sa.Engine, name: str) -> dict[str, int]:
    src = source_of(name)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT s.organization_id, count(*) FROM ({src.select}) s "
                                    f"WHERE NOT s.deleted GROUP BY 1"))
        return {str(org) if org is not None else NO_ORGANIZATION: count for org, count in rows}


def _sample_ids(engine: sa.Engine, name: str, size: int) -> list[str]:
    src = source_of(name)
    with engine.connect() as conn:
        return [str(i) for i in conn.execute(sa.text(
            f"SELECT s.id FROM ({src.select}) s WHERE NOT s.deleted ORDER BY md5(s.id::text) LIMIT :n"), {"n": size}
        ).scalars()]


def reconcile(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str, *, sample: int = SAMPLE) -> Reconciliation:
    client.indices.refresh(index=layout.read_alias(name))
    in_postgres = postgres_counts(engine, name)
    in_elasticsearch = count_by_organization(client, layout, name)
    result = Reconciliation(name, sum(in_postgres.values()), sum(in_elasticsearch.values()),
                            len(set(in_postgres) | set(in_elasticsearch)))
    for org in sorted(set(in_postgres) | set(in_elasticsearch)):
        pair = (in_postgres.get(org, 0), in_elasticsearch.get(org, 0))
        if pair[0] != pair[1]:
            result.count_differences[org] = pair

    ids = _sample_ids(engine, name, sample)
    with engine.connect() as conn:
        expected = {c.id: c.document for c in changes_for(conn, source_of(name), ids)}
    stored = {}
    if ids:
        found = client.search(index=layout.read_alias(name), query={"ids": {"values": ids}}, size=len(ids))
        stored = {hit["_id"]: hit["_source"] for hit in found["hits"]["hits"]}
    digest = hashlib.sha256()
    for doc_id in ids:
        want, have = expected.get(doc_id), stored.get(doc_id)
        if isinstance(want, str):
            want = json.loads(want)
        digest.update(json.dumps([doc_id, have], sort_keys=True, default=str).encode())
        if have is None:
            result.sample_differences.append(f"{doc_id}: missing from the index")
        elif want is not None and want != have:
            fields = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
            result.sample_differences.append(f"{doc_id}: {', '.join(fields)} differ")
    result.sampled, result.sample_hash = len(ids), digest.hexdigest()[:16]
    return result


def _postgres_ids(engine: sa.Engine, name: str, organization: str) -> set[str]:
    src = source_of(name)
    where = "s.organization_id IS NULL" if organization == NO_ORGANIZATION else "s.organization_id::text = :org"
    with engine.connect() as conn:
        return {str(i) for i in conn.execute(sa.text(f"SELECT s.id FROM ({src.select}) s WHERE NOT s.deleted AND {where}"),
                                             {"org": organization}).scalars()}


def _elasticsearch_ids(client: Elasticsearch, layout: Layout, name: str, organization: str) -> set[str]:
    if organization != NO_ORGANIZATION:
        return ids_of(client, layout, name, organization)
    query = {"bool": {"must_not": {"exists": {"field": "organization_id"}}}}
    return {hit["_id"] for hit in helpers.scan(client, index=layout.read_alias(name), query={"query": query},
                                               _source=False, size=1000)}


def repair(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str) -> tuple[Reconciliation, SyncReport]:
    """Re-sync exactly what reconciliation finds different: for each organization whose counts differ,
    the documents missing from the index are written and those without a live row deleted; every
    sampled document that differs is rewritten. Versions still apply: a document newer than its row
    (a database restored from an older backup) needs `search sync --full` into a fresh index instead."""
    found = reconcile(engine, client, layout, name)
    report = SyncReport(name, "repair", None, 0)
    ids: set[str] = {d.split(":", 1)[0] for d in found.sample_differences}
    missing = {d.split(":", 1)[0] for d in found.sample_differences if d.endswith("missing from the index")}
    for organization in found.count_differences:
        in_postgres = _postgres_ids(engine, name, organization)
        in_index = _elasticsearch_ids(client, layout, name, organization)
        ids |= (in_postgres - in_index) | (in_index - in_postgres)
        missing |= in_postgres - in_index
    if ids:
        backing, target = backing_indices(client, layout, name)
        for batch in batched(sorted(ids)):
            with engine.connect() as conn:
                changes = changes_for(conn, source_of(name), batch)
            report.rows_read += len(changes)
            write_changes(client, layout, name, changes, report, backing, target, frozenset(missing))
        client.indices.refresh(index=layout.read_alias(name))
    return found, report


@dataclass
class Discrepancies:
    """What a failed reconciliation found, by kind, so a person reads what is wrong and not only that
    counts differ. Ids are looked at only in the organizations whose counts differ (as `repair` does)."""
    index: str
    orphans: int = 0           # documents whose row is gone (deleted, soft-deleted, or never there)
    misplaced: int = 0         # documents under another organization than their row's (a tenant leak)
    missing: int = 0           # live rows without any document
    sample_differing: int = 0  # sampled documents whose fields differ from their row
    sampled: int = 0

    def describe(self) -> str:
        parts = []
        if self.orphans:
            parts.append(f"{self.orphans:,} document(s) without a row")
        if self.misplaced:
            parts.append(f"{self.misplaced:,} under another organization than their row")
        if self.missing:
            parts.append(f"{self.missing:,} row(s) without a document")
        if self.sample_differing:
            parts.append(f"{self.sample_differing:,} of {self.sampled:,} sampled document(s) differ from their row")
        return f"{self.index}: " + (", ".join(parts) or "documents equal PostgreSQL's rows")


def _live_rows(engine: sa.Engine, name: str, ids: list[str]) -> dict[str, str]:
    """id -> organization of the live rows among `ids` (found through the primary key)."""
    src = source_of(name)
    found: dict[str, str] = {}
    for batch in batched(ids):
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT q.id, q.organization_id FROM ({src.select}) q WHERE NOT q.deleted "
                                        f"AND q.id = ANY(CAST(:ids AS {src.id_type}[]))"), {"ids": batch})
            found |= {str(i): str(org) if org is not None else NO_ORGANIZATION for i, org in rows}
    return found


def _indexed(client: Elasticsearch, layout: Layout, name: str, ids: list[str]) -> set[str]:
    """Which of `ids` have a document in the index, under any organization."""
    found: set[str] = set()
    for batch in batched(ids):
        response = client.search(index=layout.read_alias(name), query={"ids": {"values": batch}}, size=len(batch),
                                 source=False)
        found |= {hit["_id"] for hit in response["hits"]["hits"]}
    return found


def discrepancies(engine: sa.Engine, client: Elasticsearch, layout: Layout, name: str,
                  found: Reconciliation) -> Discrepancies:
    """Count what `found` (a reconciliation of `name`) differs by: for each organization whose counts
    differ, the documents with no row there are orphans (no live row anywhere) or misplaced (the row is
    in another organization); the rows with no document there are misplaced (a document elsewhere) or
    missing."""
    extra: set[str] = set()   # documents under an organization that has no such live row
    lacking: set[str] = set()  # live rows with no document under their organization
    for organization in found.count_differences:
        in_postgres = _postgres_ids(engine, name, organization)
        in_index = _elasticsearch_ids(client, layout, name, organization)
        extra |= in_index - in_postgres
        lacking |= in_postgres - in_index
    alive = _live_rows(engine, name, sorted(extra))
    elsewhere = _indexed(client, layout, name, sorted(lacking))
    misplaced = set(alive) | elsewhere
    # a sampled document already counted (misplaced, missing) is not counted again
    differing = {d.split(":", 1)[0] for d in found.sample_differences} - misplaced - lacking
    return Discrepancies(
        index=name,
        orphans=len(extra) - len(alive),
        misplaced=len(misplaced),
        missing=len(lacking - elsewhere),
        sample_differing=len(differing),
        sampled=found.sampled,
    )
