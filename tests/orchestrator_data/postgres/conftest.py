from __future__ import annotations

import pytest

from orchestrator_data.postgres import client, migrator
from tests.orchestrator_data.postgres.dbs import fresh_database


@pytest.fixture
def fresh_url(stack):
    """A new, empty database (the stack's superuser URL)."""
    with fresh_database(stack) as url:
        yield url


@pytest.fixture
def migrated_url(fresh_url):
    migrator.upgrade(fresh_url)
    return fresh_url


@pytest.fixture
def engine(migrated_url):
    """A superuser engine on a database migrated to head."""
    engine = client.create_engine(migrated_url, pool=client.PoolOptions(size=2, max_overflow=2))
    yield engine
    engine.dispose()
