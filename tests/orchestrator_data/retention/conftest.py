"""Seeded databases and policy directories for the retention tests (shared with tests/cli and tests/assets)."""

from __future__ import annotations

import pytest

from tests.retention_data import seeded_for_retention


@pytest.fixture
def seeded(engine):
    return seeded_for_retention(engine)
