"""Tenant-safe search on the real node: every path filtered by organization, the user's text never
read as query syntax, names outranking descriptions, and exact counts and ids for reconciliation."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from elasticsearch import helpers

from orchestrator_data.search import indices, query
from orchestrator_data.search.errors import SearchError, UnknownIndex
from orchestrator_data.search.indices import NAMES
from orchestrator_data.search.query import InvalidOrganization, InvalidSearch, count_by_organization, ids_of, search

pytestmark = pytest.mark.integration

ORG_A, ORG_B, ORG_C = (str(uuid.UUID(int=n, version=4)) for n in (0xA, 0xB, 0xC))
ORGS = (ORG_A, ORG_B, ORG_C)
# Every organization uses the same words, so a search that forgot the tenant would find others' documents.
WORDS = ("invoice", "triage", "support", "ticket", "report", "summary", "pipeline", "refund", "timeout", "alert")
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _documents(rng: random.Random) -> dict[str, list[dict]]:
    """Synthetic documents of the five indices for three organizations, within the strict mappings."""
    docs: dict[str, list[dict]] = {name: [] for name in NAMES}
    audit_id = 0
    for org_number, org in enumerate(ORGS):
        for n in range(4 + org_number):
            when = (START + timedelta(hours=rng.randint(0, 5000))).isoformat()
            name = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {n}"
            docs["workflows"].append({
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "organization_id": org, "name": name,
                "description": " ".join(rng.choices(WORDS, k=8)), "engine_type": "langgraph", "status": "active",
                "tags": [rng.choice(WORDS)], "current_version": 1, "created_at": when, "updated_at": when})
            docs["executions"].append({
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "organization_id": org,
                "workflow_name": name, "status": rng.choice(["failed", "succeeded"]), "created_at": when,
                "error": f"{rng.choice(WORDS)} {rng.choice(WORDS)} after 30s"})
            for action in ("INSERT", "UPDATE"):
                audit_id += 1
                docs["audit_logs"].append({
                    "id": audit_id, "organization_id": org, "action": action, "table_name": "workflows",
                    "record_id": docs["workflows"][-1]["id"], "transaction_id": 1000 + audit_id, "occurred_at": when})
            docs["system_metrics"].append({
                "organization_id": org, "service": "postgres", "metric": "connections", "value": n,
                "unit": "count", "sampled_at": when})
        for status in ("published", "draft", "delisted"):
            when = (START + timedelta(hours=rng.randint(0, 5000))).isoformat()
            docs["marketplace"].append({
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "organization_id": org,
                "name": f"{rng.choice(WORDS).title()} {status} listing", "summary": " ".join(rng.choices(WORDS, k=4)),
                "description": " ".join(rng.choices(WORDS, k=10)), "category": "support", "status": status,
                "tags": [rng.choice(WORDS)], "created_at": when, "updated_at": when})
    # platform-wide samples: an empty organization, and none at all
    docs["system_metrics"].append({"organization_id": "", "service": "redis", "metric": "memory", "value": 1.0,
                                   "unit": "bytes", "sampled_at": START.isoformat()})
    docs["system_metrics"].append({"service": "redis", "metric": "memory", "value": 2.0, "unit": "bytes",
                                   "sampled_at": START.isoformat()})
    return docs


def _doc_id(name: str, doc: dict, position: int) -> str:
    return str(doc["id"]) if "id" in doc else f"{name}-{position}"


def _load(es, layout, docs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Creates the indices and indexes `docs` (each gets its `_id`); returns them."""
    indices.init_indices(es, layout)
    actions = []
    for name, documents in docs.items():
        for position, doc in enumerate(documents):
            actions.append({"_index": layout.write_alias(name), "_id": _doc_id(name, doc, position),
                            "_source": doc})
    helpers.bulk(es, actions, refresh=True)
    return {name: [{**doc, "_id": _doc_id(name, doc, p)} for p, doc in enumerate(documents)]
            for name, documents in docs.items()}


@pytest.fixture
def corpus(es, layout):
    return _load(es, layout, _documents(random.Random(20260101)))


def _assert_tenant_safe(hits, organization):
    for hit in hits:
        if hit.index == "marketplace" and hit.organization_id != organization:
            assert hit.source["status"] == "published", hit.as_dict()
        else:
            assert hit.organization_id == organization, hit.as_dict()


def test_each_index_returns_only_the_organizations_documents(es, layout, corpus):
    for name in ("workflows", "executions", "audit_logs", "system_metrics"):
        expected = {doc["_id"] for doc in corpus[name] if doc.get("organization_id") == ORG_A}
        hits = search(es, layout, ORG_A, "", index=name, size=100)
        assert {hit.id for hit in hits} == expected and expected
        assert {hit.index for hit in hits} == {name}
        _assert_tenant_safe(search(es, layout, ORG_A, "invoice support workflows UPDATE postgres", index=name,
                                   size=100), ORG_A)


def test_marketplace_shows_own_listings_of_any_status_and_others_published_only(es, layout, corpus):
    hits = search(es, layout, ORG_A, "", index="marketplace", size=100)
    seen = {(hit.organization_id, hit.source["status"]) for hit in hits}
    assert seen == {(ORG_A, "published"), (ORG_A, "draft"), (ORG_A, "delisted"),
                    (ORG_B, "published"), (ORG_C, "published")}
    assert len(hits) == 5
    # the words of B's draft listing find nothing of it
    draft_b = next(d for d in corpus["marketplace"] if d["organization_id"] == ORG_B and d["status"] == "draft")
    found = search(es, layout, ORG_A, f"{draft_b['name']} {draft_b['summary']}", index="marketplace", size=100)
    assert draft_b["_id"] not in {hit.id for hit in found} and found
    _assert_tenant_safe(found, ORG_A)


def test_empty_text_returns_the_most_recent_first_and_all_indices_together(es, layout, corpus):
    hits = search(es, layout, ORG_A, "   ", index="workflows", size=3)
    newest = sorted((d for d in corpus["workflows"] if d["organization_id"] == ORG_A),
                    key=lambda d: d["updated_at"], reverse=True)[:3]
    assert [hit.id for hit in hits] == [d["_id"] for d in newest]
    together = search(es, layout, ORG_A, None, size=100)
    assert {hit.index for hit in together} == set(query.SEARCHED_BY_DEFAULT)
    _assert_tenant_safe(together, ORG_A)
    assert all(isinstance(hit.as_dict()["source"], dict) for hit in together)


def _fuzz_strings(rng: random.Random, corpus) -> list[str]:
    other_ids = [d["_id"] for name in corpus for d in corpus[name] if d.get("organization_id") != ORG_A]
    pieces = [
        f"organization_id:{ORG_B}", f"organization_id:\"{ORG_C}\"", f"_id:{rng.choice(other_ids)}",
        f"_index:{'*'}", "status:draft", "status:published AND NOT organization_id:x", "*", "?", "OR", "AND NOT",
        "(", ")", '"', "\\", "/.*/", "/inv.*/", "[a TO z]", "{a TO z}", "{}", "+", "-", "~2", "^10", "||", "&&",
        "!", ":", "*:*", "organization_id:*", "_exists_:organization_id", "<", ">=", "\u00e9t\u00e9",
        "\u6f22\u5b57", "\U0001f600", "\u0000", "\ud800", "\t\n", "UPDATE", "workflows", "draft", "delisted",
        "published", *WORDS,
    ]
    strings = ["", " ", "\t\n  ", "*", "*:*", "a" * 5000, " ".join(WORDS) * 40, "(" * 300, "\\" * 99]
    while len(strings) < 300:
        strings.append(rng.choice(("", " ")).join(rng.choices(pieces, k=rng.randint(1, 8))))
    return strings


def test_fuzzed_text_never_reaches_another_organization(es, layout, corpus):
    rng = random.Random(7)
    found = Counter()
    for text in _fuzz_strings(rng, corpus):
        for name in (*NAMES, None):
            hits = search(es, layout, ORG_A, text, index=name, size=50)
            _assert_tenant_safe(hits, ORG_A)
            found[name] += len(hits)
    # not vacuous: the shared words found documents on every path
    assert all(found[name] > 0 for name in (*NAMES, None)), found


def test_a_missing_or_malformed_organization_is_refused_without_echoing_it(es, layout, corpus):
    for bad in (None, "", "   ", "not-a-uuid", "secret-value-123", 42, ORG_A + "x", [ORG_A]):
        for call in (lambda: search(es, layout, bad, "invoice"),
                     lambda: search(es, layout, bad, "", index="marketplace"),
                     lambda: ids_of(es, layout, "workflows", bad)):
            with pytest.raises(InvalidOrganization) as raised:
                call()
            assert isinstance(raised.value, SearchError)
            if str(bad).strip():
                assert str(bad).strip() not in str(raised.value)


def test_bad_size_text_or_index_is_refused(es, layout, corpus):
    for size in (0, -1, 101, True, "5", 2.0):
        with pytest.raises(InvalidSearch, match="size must be a whole number from 1 to 100"):
            search(es, layout, ORG_A, "invoice", size=size)
    with pytest.raises(InvalidSearch, match="search text must be a string"):
        search(es, layout, ORG_A, 12)
    with pytest.raises(UnknownIndex):
        search(es, layout, ORG_A, "x", index="users")
    assert len(search(es, layout, ORG_A, "", size=1)) == 1 and len(search(es, layout, ORG_A, "", size=100)) > 20


def test_a_match_in_the_name_ranks_above_one_in_the_description(es, layout):
    when = START.isoformat()
    name_doc = {"id": "x", "organization_id": ORG_A, "name": "Reconciliation helper",
                "description": "Matches payments with ledgers every night", "updated_at": when}
    description_doc = {"id": "y", "organization_id": ORG_A, "name": "Nightly ledger job",
                       "description": "Reconciliation of payments", "updated_at": when}
    listing_x = {**name_doc, "id": "mx", "summary": "Ledger matching", "status": "draft"}
    listing_y = {**description_doc, "id": "my", "summary": "Reconciliation for teams", "status": "published",
                 "organization_id": ORG_B}
    # a newer description-only match must still rank below the name match
    _load(es, layout, {"workflows": [{**description_doc, "updated_at": (START + timedelta(days=9)).isoformat()},
                                     name_doc],
                       "marketplace": [listing_y, listing_x]})
    assert [hit.id for hit in search(es, layout, ORG_A, "reconciliation", index="workflows")] == ["x", "y"]
    assert [hit.id for hit in search(es, layout, ORG_A, "RECONCILIATION", index="marketplace")] == ["mx", "my"]


def test_keywords_match_word_by_word_ignoring_case(es, layout, corpus):
    record = next(d for d in corpus["audit_logs"] if d["organization_id"] == ORG_A)["record_id"]
    hits = search(es, layout, ORG_A, f"update {record}", index="audit_logs", size=100)
    assert hits and all(hit.source["action"] == "UPDATE" or hit.source["record_id"] == record for hit in hits)
    assert hits[0].source["record_id"] == record and hits[0].source["action"] == "UPDATE"  # both words match
    assert search(es, layout, ORG_B, record, index="audit_logs") == []


def test_count_by_organization_and_ids_of_are_exact_across_pages(es, layout, corpus, monkeypatch):
    monkeypatch.setattr(query, "_PAGE", 2)  # several pages of buckets and of ids
    for name in NAMES:
        expected = Counter(doc.get("organization_id", "") for doc in corpus[name])
        assert count_by_organization(es, layout, name) == dict(expected)
        for org in ORGS:
            owned = {doc["_id"] for doc in corpus[name] if doc.get("organization_id") == org}
            assert ids_of(es, layout, name, org) == owned
    assert ids_of(es, layout, "workflows", str(uuid.uuid4())) == set()


def test_a_search_before_the_indices_exist_names_the_index_and_cause(es, layout):
    with pytest.raises(InvalidSearch, match="search on 'workflows' failed: index_not_found_exception"):
        search(es, layout, ORG_A, "invoice")
