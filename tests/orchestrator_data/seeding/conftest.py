from __future__ import annotations

import pytest

from tests.databases import migrated_database


@pytest.fixture
def seeded_db(stack):
    """A fresh database migrated to head, as production gets it (dropped afterwards)."""
    with migrated_database(stack, prefix="seed") as (_, engine):
        yield engine
