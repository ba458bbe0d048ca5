"""Sessions on the real server: create, read, sliding TTL, absolute lifetime, revoke one, revoke all
of a user (exactly those), and the per-user index."""

from __future__ import annotations

import time

import pytest

from orchestrator_data.redis.client import create_client
from orchestrator_data.redis.errors import RedisUnavailable
from orchestrator_data.redis.keyspace import SESSION, USER_SESSIONS
from orchestrator_data.redis.sessions import SessionStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def test_create_read_and_revoke(client, uid):
    store = SessionStore(client)
    session = store.create(f"u{uid}", {"org": "acme", "roles": ["admin"]})
    assert len(session.id) >= 43 and session.id not in repr(session)
    read = store.get(session.id)
    assert read == session
    assert read.user_id == f"u{uid}" and read.data == {"org": "acme", "roles": ["admin"]}
    assert 0 < store.ttl(session.id) <= 24 * 3600
    assert client.sismember(USER_SESSIONS.key(user_id=f"u{uid}"), session.id)
    assert store.revoke(session.id) is True
    assert store.get(session.id) is None and store.touch(session.id) is None
    assert not client.sismember(USER_SESSIONS.key(user_id=f"u{uid}"), session.id)
    assert store.revoke(session.id) is False


def test_unknown_or_malformed_ids_are_no_session(client, uid):
    store = SessionStore(client)
    for bad in ("nope", "", "has space", "star*"):
        assert store.get(bad) is None and store.touch(bad) is None and store.revoke(bad) is False
    foreign = SESSION.key(session_id=f"foreign{uid}")
    client.hset(foreign, "user_id", "x")  # a hash this store did not write
    client.expire(foreign, 60)
    assert store.get(f"foreign{uid}") is None and store.touch(f"foreign{uid}") is None
    client.delete(foreign)


def test_touch_slides_the_idle_ttl_and_the_session_expires_when_idle(client, uid):
    store = SessionStore(client, idle_ttl=1.0, max_lifetime=60)
    session = store.create(f"u{uid}")
    time.sleep(0.6)
    touched = store.touch(session.id, data={"step": 2})
    assert touched.last_seen_at > session.last_seen_at and touched.data == {"step": 2}
    assert store.ttl(session.id) > 0.9  # slid back to the full idle TTL
    time.sleep(0.6)
    assert store.get(session.id) is not None  # 1.2 s after creation, alive thanks to the touch
    time.sleep(1.1)
    assert store.get(session.id) is None  # idle longer than the TTL


def test_touch_never_extends_past_the_absolute_lifetime(client, uid):
    store = SessionStore(client, idle_ttl=60, max_lifetime=1.0)
    session = store.create(f"u{uid}")
    assert store.ttl(session.id) <= 1.0
    time.sleep(0.5)
    store.touch(session.id)
    assert store.ttl(session.id) <= 0.55
    time.sleep(0.6)
    assert store.touch(session.id) is None


def test_revoke_user_ends_exactly_that_users_sessions(client, uid):
    store = SessionStore(client)
    alice = [store.create(f"alice{uid}") for _ in range(5)]
    bob = store.create(f"bob{uid}")
    assert {s.id for s in store.list_user(f"alice{uid}")} == {s.id for s in alice}
    assert store.revoke_user(f"alice{uid}") == 5
    assert all(store.get(s.id) is None for s in alice)
    assert not client.exists(USER_SESSIONS.key(user_id=f"alice{uid}"))
    assert store.get(bob.id) is not None
    assert store.revoke_user(f"alice{uid}") == 0
    store.revoke(bob.id)


def test_index_forgets_expired_sessions_and_outlives_live_ones(client, uid):
    short = SessionStore(client, idle_ttl=0.3, max_lifetime=0.3)
    gone = short.create(f"u{uid}")
    time.sleep(0.4)
    store = SessionStore(client, idle_ttl=5, max_lifetime=30)
    live = store.create(f"u{uid}")
    index = USER_SESSIONS.key(user_id=f"u{uid}")
    assert {m.decode() for m in client.smembers(index)} == {live.id}  # the expired one was pruned
    assert client.pttl(index) > 29_000  # at least the newest session's absolute lifetime
    assert client.pttl(SESSION.key(session_id=live.id)) <= 5000
    assert gone.id not in {s.id for s in store.list_user(f"u{uid}")}
    store.revoke_user(f"u{uid}")


def test_sessions_raise_a_clear_error_when_redis_is_down(dead_url):
    client = create_client(dead_url, retries=0, socket_timeout=1)
    store = SessionStore(client)
    with pytest.raises(RedisUnavailable) as caught:
        store.create("u1")
    assert "create session: Redis is unavailable" in str(caught.value)
    assert "DeadPortSecret42" not in str(caught.value)
    with pytest.raises(RedisUnavailable):
        store.get("abc")
    with pytest.raises(RedisUnavailable):
        store.revoke_user("u1")
