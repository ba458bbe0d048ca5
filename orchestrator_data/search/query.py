"""Tenant-safe search over the search indices: the one way the product and the checks read them.

Every request is built by `_within_tenant`, which validates the organization and puts the tenant
rule in the bool `filter` clause, so no path can search without it:

    workflows, executions, audit_logs, system_metrics   organization_id == the organization
    marketplace (search)                                 published by anyone, or the organization's own
    marketplace (ids_of, owned_only)                     organization_id == the organization

The user's text is never parsed as query syntax: analysed fields get a `multi_match`, keyword fields
get one case-insensitive `term` per word, so `organization_id:...`, `*`, `OR`, `/.*/` or
`[a TO z]` are only words to look for.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from elasticsearch import Elasticsearch, helpers

from orchestrator_data.errors import BadInput
from orchestrator_data.search.errors import SearchError, UnknownIndex
from orchestrator_data.search.indices import NAMES, Layout

SEARCHED_BY_DEFAULT = ("workflows", "executions", "audit_logs", "marketplace")
MAX_SIZE = 100
# Longer text is cut: a search box needs no more, and it bounds the number of clauses per request.
MAX_TEXT_CHARS = 512
MAX_KEYWORD_WORDS = 32
PUBLISHED = "published"
_PAGE = 1000


class InvalidOrganization(SearchError, BadInput):
    """The organization is missing or not a UUID (the message never repeats the value)."""


class InvalidSearch(SearchError, BadInput):
    """A search argument out of range, or a search the cluster refused."""


@dataclass(frozen=True)
class _Fields:
    text: tuple[str, ...]       # analysed fields for multi_match, with their boosts
    keywords: tuple[str, ...]   # keyword fields matched word by word, exactly but ignoring case
    recency: str                # the date that orders equally scored hits, newest first
    tiebreak: str | None        # a unique field, so equal hits come back in a stable order


# A match in a name outranks one only in a description or summary.
_FIELDS = {
    "workflows": _Fields(("name^3", "description"), ("tags",), "updated_at", "id"),
    "executions": _Fields(("workflow_name^2", "error"), (), "created_at", "id"),
    "audit_logs": _Fields((), ("action", "table_name", "record_id"), "occurred_at", "id"),
    "system_metrics": _Fields((), ("service", "metric", "unit"), "sampled_at", None),
    "marketplace": _Fields(("name^3", "summary^1.5", "description"), ("tags", "category"), "updated_at", "id"),
}


@dataclass(frozen=True)
class Hit:
    index: str                  # the logical index name ("workflows"), not the backing index
    id: str
    organization_id: str | None
    score: float
    source: dict

    def as_dict(self) -> dict:
        return asdict(self)


def _organization(organization_id: Any) -> str:
    """The organization in its canonical form; anything else is refused, never read as "all"."""
    if isinstance(organization_id, uuid.UUID):
        return str(organization_id)
    if not isinstance(organization_id, str) or not organization_id.strip():
        raise InvalidOrganization("an organization is required: organization_id must be a UUID")
    try:
        return str(uuid.UUID(organization_id.strip()))
    except ValueError:
        raise InvalidOrganization("organization_id must be a UUID") from None


def _index_name(index: str) -> str:
    if index not in NAMES:
        raise UnknownIndex(str(index))
    return index


def _within_tenant(index: str, organization_id: Any, query: dict, *, owned_only: bool = False) -> dict:
    """`query` restricted to what the organization may see: the only place the tenant rule is built."""
    organization = _organization(organization_id)
    own = {"term": {"organization_id": organization}}
    if index == "marketplace" and not owned_only:
        tenant = {"bool": {"should": [own, {"term": {"status": PUBLISHED}}], "minimum_should_match": 1}}
    else:
        tenant = own
    return {"bool": {"must": [query], "filter": [tenant]}}


def _clean_text(text: str | None) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise InvalidSearch("the search text must be a string")
    # lone surrogates cannot be sent as UTF-8; they are dropped rather than failing the search
    return text.encode("utf-8", "ignore").decode("utf-8")[:MAX_TEXT_CHARS].strip()


def _text_query(index: str, text: str) -> dict:
    """The user's words as plain words: no query syntax, wildcard or regex is interpreted."""
    if not text:
        return {"match_all": {}}
    fields = _FIELDS[index]
    should: list[dict] = []
    if fields.text:
        should.append({"multi_match": {"query": text, "fields": list(fields.text), "type": "best_fields"}})
    words = list(dict.fromkeys(text.split()))[:MAX_KEYWORD_WORDS]
    for field in fields.keywords:
        should.extend({"term": {field: {"value": word, "case_insensitive": True}}} for word in words)
    return {"bool": {"should": should, "minimum_should_match": 1}}


def _sort(index: str) -> list:
    fields = _FIELDS[index]
    sort: list = ["_score", {fields.recency: {"order": "desc", "missing": "_last", "unmapped_type": "date"}}]
    if fields.tiebreak:
        sort.append({fields.tiebreak: {"order": "asc", "unmapped_type": "keyword"}})
    return sort


def _size(size: Any) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_SIZE:
        raise InvalidSearch(f"size must be a whole number from 1 to {MAX_SIZE}")
    return size


def _raise_for(index: str, response: dict) -> None:
    error = response.get("error")
    if error:
        # the root cause names what is wrong (e.g. index_not_found_exception), not only "search failed"
        cause = (error.get("root_cause") or [error])[0] if isinstance(error, dict) else {"type": str(error)}
        raise InvalidSearch(f"search on '{index}' failed: {cause.get('type', 'error')}: "
                            f"{str(cause.get('reason', ''))[:200]}")


def search(client: Elasticsearch, layout: Layout, organization_id: Any, text: str | None, *,
           index: str | None = None, size: int = 20) -> list[Hit]:
    """The organization's documents matching `text` (its most recent ones when `text` is empty),
    best first, then newest first. `index=None` searches workflows, executions, audit_logs and
    marketplace together (one msearch) and returns the best `size` of them all."""
    names = SEARCHED_BY_DEFAULT if index is None else (_index_name(index),)
    size = _size(size)
    words = _clean_text(text)
    searches: list[dict] = []
    for name in names:
        searches.append({"index": layout.read_alias(name)})
        searches.append({"query": _within_tenant(name, organization_id, _text_query(name, words)),
                         "sort": _sort(name), "track_scores": True, "size": size})
    responses = client.msearch(searches=searches)["responses"]
    ranked = []
    for name, response in zip(names, responses):
        _raise_for(name, response)
        for found in response["hits"]["hits"]:
            recency = found["sort"][1] if len(found.get("sort", ())) > 1 else None
            hit = Hit(name, found["_id"], found["_source"].get("organization_id"), found["_score"] or 0.0,
                      found["_source"])
            ranked.append((hit, recency if isinstance(recency, (int, float)) else float("-inf")))
    ranked.sort(key=lambda item: (-item[0].score, -item[1], item[0].index, item[0].id))
    return [hit for hit, _ in ranked[:size]]


def count_by_organization(client: Elasticsearch, layout: Layout, index: str) -> dict[str, int]:
    """Documents per organization_id in an index, every bucket (a composite aggregation, paged).
    Documents without an organization (platform-wide system metrics) count under ""."""
    alias = layout.read_alias(_index_name(index))
    counts: dict[str, int] = {}
    after = None
    while True:
        composite: dict = {"size": _PAGE, "sources": [
            {"organization_id": {"terms": {"field": "organization_id", "missing_bucket": True}}}]}
        if after is not None:
            composite["after"] = after
        response = client.search(index=alias, size=0, aggregations={"by_organization": {"composite": composite}})
        aggregation = response["aggregations"]["by_organization"]
        for bucket in aggregation["buckets"]:
            key = bucket["key"]["organization_id"] or ""
            counts[key] = counts.get(key, 0) + bucket["doc_count"]
        after = aggregation.get("after_key")
        if not aggregation["buckets"] or after is None:
            return counts


def ids_of(client: Elasticsearch, layout: Layout, index: str, organization_id: Any) -> set[str]:
    """The ids of the documents the organization owns in an index (marketplace: its own listings,
    not others' published ones), read with a scroll over the tenant filter."""
    name = _index_name(index)
    query = _within_tenant(name, organization_id, {"match_all": {}}, owned_only=True)
    return {found["_id"] for found in helpers.scan(client, index=layout.read_alias(name), size=_PAGE,
                                                   query={"query": query, "_source": False})}
