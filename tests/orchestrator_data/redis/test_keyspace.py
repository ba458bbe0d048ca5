"""The registry itself: keys, classification, and the docs table generated from it (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator_data.redis import keyspace
from orchestrator_data.redis.keyspace import (
    CACHE,
    CACHE_LOCK,
    CACHE_STATS,
    EXECUTION_EVENTS,
    EXECUTION_STATUS,
    PATTERNS,
    QUEUE,
    RATE_LIMIT,
    SESSION,
    Eviction,
    TTLPolicy,
    classify,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "redis-keyspace.md"


def test_keys_follow_the_seed_patterns():
    assert SESSION.key(session_id="abc") == "session:abc"
    assert CACHE.key(type="workflow", id=42) == "cache:workflow:42"
    assert RATE_LIMIT.key(identifier="user:7", window="60s") == "rate_limit:user:7:60s"
    assert EXECUTION_STATUS.key(execution_id="e1") == "execution:status:e1"
    assert QUEUE.key(type="executions") == "queue:executions"
    assert EXECUTION_EVENTS.channel(execution_id="e1") == "execution:events:e1"
    assert CACHE_STATS.key() == "cache_stats"


@pytest.mark.parametrize("bad", [{"type": "a:b", "id": 1}, {"type": "", "id": 1}, {"type": "x", "id": "a*"},
                                 {"type": "x", "id": "a b"}, {"type": "x"}])
def test_bad_key_parts_are_refused(bad):
    with pytest.raises(ValueError):
        CACHE.key(**bad)


def test_every_key_is_classified_by_its_prefix():
    assert classify("session:abc") is SESSION
    assert classify(b"cache:user:1") is CACHE
    assert classify("cache_lock:user:1") is CACHE_LOCK
    assert classify("cache_stats") is CACHE_STATS
    assert classify("rate_limit:ip:10.0.0.1:1s") is RATE_LIMIT
    assert classify("execution:status:9") is EXECUTION_STATUS
    assert classify("execution:other") is None
    assert classify("somebody-elses-key") is None
    assert classify("cache") is None


def test_sensitive_keys_are_masked_when_shown():
    assert SESSION.shown("session:secret-token") == "session:***"
    assert CACHE.shown("cache:user:1") == "cache:user:1"


def test_state_must_not_be_evicted_and_every_pattern_has_a_ttl_rule():
    never = {p.name for p in PATTERNS if p.eviction is Eviction.NEVER}
    assert {"session", "user_sessions", "rate_limit", "execution_status", "queue", "dead_letter"} <= never
    assert {p.name for p in PATTERNS if p.eviction is Eviction.ALLOWED} == {"cache", "cache_lock", "cache_stats"}
    assert {p.name for p in PATTERNS if p.ttl is TTLPolicy.NONE} == {"cache_stats", "queue", "dead_letter"}


def test_the_docs_show_the_registry_as_it_is():
    assert keyspace.markdown_table() in DOC.read_text()
