"""A real Elasticsearch client on the test stack's node, and a fresh index prefix per test, so tests
never see each other's indices; everything under the prefix is deleted afterwards."""

from __future__ import annotations

import uuid

import pytest

from orchestrator_data.search.indices import NAMES, Layout


@pytest.fixture
def layout(es):
    layout = Layout(prefix=f"t{uuid.uuid4().hex[:10]}")
    yield layout
    # by name: the cluster refuses wildcard deletes (action.destructive_requires_name)
    names = list(es.indices.get(index=f"{layout.prefix}-*", allow_no_indices=True))
    if names:
        es.indices.delete(index=",".join(names))
    for name in NAMES:
        es.options(ignore_status=404).indices.delete_index_template(name=layout.template(name))
    es.options(ignore_status=404).cluster.delete_component_template(name=layout.component())
