"""Real clients on the test stack: the search tests' `es` and `layout` (a prefix of the test's own,
deleted afterwards), a queue of the test's own, and the system_metrics index created under the layout."""

from __future__ import annotations

import uuid

import pytest

from orchestrator_data.redis.keyspace import DEAD_LETTER, QUEUE
from orchestrator_data.search.indices import init_indices
from tests.orchestrator_data.search.conftest import layout  # noqa: F401 - reused as it is (es is in tests/conftest.py)


@pytest.fixture
def queue_type(redis_client):
    """A queue of the test's own, deleted afterwards (streams have no TTL)."""
    type_ = f"test{uuid.uuid4().hex[:12]}"
    yield type_
    redis_client.delete(QUEUE.key(type=type_), DEAD_LETTER.key(type=type_))


@pytest.fixture
def metrics_layout(es, layout):  # noqa: F811
    """The layout with its system_metrics index (and only that) created."""
    init_indices(es, layout, ("system_metrics",))
    return layout
