"""Fixtures of the Redis keyspace tests: a client on the session stack's Redis, unique names that
are cleaned up, a dead port, and a Redis server of the test's own for restarts."""

from __future__ import annotations

import uuid

import pytest

from orchestrator_data.connections import resolve_url
from orchestrator_data.redis.client import create_client
from orchestrator_data.redis.keyspace import CACHE_STATS, DEAD_LETTER, QUEUE
from orchestrator_data.settings import load_settings
from orchestrator_data.stack.common import Secrets, free_port
from orchestrator_data.stack.redis import RedisService


@pytest.fixture
def redis_url(stack) -> str:
    return resolve_url("redis", load_settings())


@pytest.fixture
def client(redis_url):
    client = create_client(redis_url)
    yield client
    client.close()
    client.connection_pool.disconnect()


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def queue_type(client, uid):
    """A queue of the test's own, deleted afterwards (streams have no TTL)."""
    type_ = f"test{uid}"
    yield type_
    client.delete(QUEUE.key(type=type_), DEAD_LETTER.key(type=type_))


@pytest.fixture
def cache_type(client, uid):
    """A cache type of the test's own; its counters are removed afterwards."""
    type_ = f"test{uid}"
    yield type_
    client.hdel(CACHE_STATS.key(), f"{type_}:hits", f"{type_}:misses")


@pytest.fixture
def dead_url() -> str:
    """A Redis URL nothing listens on, with a password that must never show up anywhere."""
    return f"redis://:DeadPortSecret42@127.0.0.1:{free_port()}/0"


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of this test alone (on a free port under tmp_path), to stop and restart;
    the session stack's Redis is never touched. Stopped in teardown."""
    service = RedisService(tmp_path, free_port(), Secrets(tmp_path / "secrets.json"))
    service.start()
    yield service
    service.stop()
