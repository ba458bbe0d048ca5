from __future__ import annotations

import contextlib
import uuid

import psycopg
import pytest

from orchestrator_data.postgres.client import create_engine
from orchestrator_data.urls import libpq_url, replace_database


@contextlib.contextmanager
def new_database(stack):
    """A fresh database on the test stack, migrated to head as production gets it; dropped after."""
    from orchestrator_data.postgres import migrator

    base = stack.endpoints().database_url
    name = f"seed_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = replace_database(base, name)
    engine = create_engine(url)
    try:
        migrator.upgrade(url)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(libpq_url(base), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def seeded_db(stack):
    with new_database(stack) as engine:
        yield engine
