from __future__ import annotations

import base64
import os

import psycopg
import pytest

from orchestrator_data.postgres import migrator
from orchestrator_data.postgres.client import create_engine
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from tests.databases import admin_url, fresh_database


@pytest.fixture(scope="module")
def seeded_url(stack):
    """A migrated database with a small deterministic seed; shared by a module's tests (read only)."""
    with fresh_database(stack, prefix="od_backup") as url:
        migrator.upgrade(url)
        engine = create_engine(url)
        try:
            seed(engine, "testing", SeedPlan(executions=1500))
        finally:
            engine.dispose()
        yield url


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


def key_text(key: bytes) -> str:
    return base64.b64encode(key).decode()


def scratch_databases(stack, prefix: str = "restore_check_") -> list[str]:
    with psycopg.connect(admin_url(stack), autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)).fetchall()]


def flip_bit(path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def database_password(url: str) -> str:
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).password or "")
