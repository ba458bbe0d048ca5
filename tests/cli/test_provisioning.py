"""`init`, `reset` and `seed run|clean` through the installed console script, each on a fresh
database and its own Redis database number, so nothing else in the session is disturbed."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from orchestrator_data import connections, urls
from orchestrator_data.search.indices import NAMES, Layout, drop_indices
from orchestrator_data.settings import load_settings
from tests.databases import HEAD, fresh_database

pytestmark = pytest.mark.integration


def _redis_db(stack, number: int) -> str:
    parts = urlsplit(stack.endpoints().redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{number}", "", ""))


@pytest.fixture
def env(stack):
    """A fresh database, Redis database 11 and an index prefix of its own (its indices dropped after)."""
    prefix = f"p{uuid.uuid4().hex[:10]}"
    with fresh_database(stack, prefix="cli_life") as url:
        yield {"DATABASE_URL": url, "REDIS_URL": _redis_db(stack, 11), "ENVIRONMENT": "development",
               "SEARCH_INDEX_PREFIX": prefix}
    client = connections.elasticsearch_client(load_settings())
    drop_indices(client, Layout(prefix))
    client.close()


def _indices(prefix: str) -> list[str]:
    client = connections.elasticsearch_client(load_settings())
    try:
        return sorted(client.indices.get(index=f"{prefix}-*", allow_no_indices=True))
    finally:
        client.close()


def _secrets(stack) -> list[str]:
    return list(json.loads((stack.root / "secrets.json").read_text()).values())


def _clean_output(result, stack):
    for secret in _secrets(stack):
        assert secret not in result.stdout and secret not in result.stderr


def _count(url: str, table: str) -> int:
    with psycopg.connect(urls.libpq_url(url)) as conn:
        return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


def test_init_migrates_sets_up_redis_and_checks_search(cli, stack, env):
    first = cli("init", "--verbose", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"migrated base → {HEAD}" in first.stdout
    assert "✓ redis" in first.stdout and "consumer groups" in first.stdout
    assert "✓ search" in first.stdout and "5 indices ready, created" in first.stdout
    prefix = env["SEARCH_INDEX_PREFIX"]
    assert _indices(prefix) == sorted(Layout(prefix).backing(name, 1) for name in NAMES)
    _clean_output(first, stack)
    again = cli("init", env=env)
    assert again.returncode == 0 and "nothing to migrate" in again.stdout and "nothing to create" in again.stdout


def test_init_skips(cli, env):
    result = cli("init", "--skip-redis", "--skip-search", env=env)
    assert result.returncode == 0, result.stderr
    assert "redis      skipped" in result.stdout and "search     skipped" in result.stdout


def test_seed_run_clean_round_trip(cli, stack, env):
    assert cli("init", "--skip-redis", "--skip-search", env=env).returncode == 0
    seeded = cli("seed", "run", "--scale", "400", env=env)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert "executions" in seeded.stdout and "400" in seeded.stdout
    # piped: plain progress lines, a rate and the end of each step, no control characters
    assert "executions: 400 rows of 400 rows, " in seeded.stdout and "done in " in seeded.stdout
    assert "tables: " in seeded.stdout and "\x1b" not in seeded.stdout
    assert _count(env["DATABASE_URL"], "executions") == 400
    again = cli("seed", "run", "--scale", "400", env=env)
    assert again.returncode == 0 and "already loaded" in again.stdout
    refused = cli("seed", "clean", env=env)
    assert refused.returncode == 2 and "--confirm" in refused.stderr
    cleaned = cli("seed", "clean", "--confirm", env=env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert _count(env["DATABASE_URL"], "organizations") == 0
    _clean_output(cleaned, stack)


@pytest.mark.parametrize("args", [["seed", "run", "-e", "production"], ["seed", "clean", "--confirm", "-e", "production"],
                                  ["seed", "run", "-e", "staging"]])
def test_seed_refused_outside_development_and_testing(cli, env, args):
    result = cli(*args, env=env)
    assert result.returncode == 2
    assert "refused" in result.stderr


def test_seed_bad_scale_is_a_usage_error(cli, env):
    assert cli("seed", "run", "--scale", "0", env=env).returncode == 2


def test_seed_without_schema_fails_cleanly(cli, env):
    result = cli("seed", "run", "--scale", "10", env=env)
    assert result.returncode == 1
    assert "rolled back" in result.stderr and "Traceback" not in result.stderr


def test_reset_refusals_and_round_trip(cli, stack, env):
    assert cli("init", "--skip-search", env=env).returncode == 0
    assert cli("seed", "run", "--scale", "50", env=env).returncode == 0
    without_confirm = cli("reset", env=env)
    assert without_confirm.returncode == 2 and "--confirm" in without_confirm.stderr
    production = cli("reset", "--confirm", env={**env, "ENVIRONMENT": "production"})
    assert production.returncode == 2 and "refused in production" in production.stderr
    assert _count(env["DATABASE_URL"], "executions") == 50  # neither refusal touched anything

    result = cli("reset", "--confirm", "--skip-search", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"migrated base → {HEAD}" in result.stdout
    assert _count(env["DATABASE_URL"], "executions") == 0
    _clean_output(result, stack)

    # with search: the indices are dropped and created empty again, and their watermarks are gone
    assert cli("init", env=env).returncode == 0 and cli("seed", "run", "--scale", "20", env=env).returncode == 0
    assert cli("search", "sync", env=env).returncode == 0
    with_search = cli("reset", "--confirm", env=env)
    assert with_search.returncode == 0, with_search.stdout + with_search.stderr
    assert "5 search indices" in with_search.stdout and "5 indices ready, created" in with_search.stdout
    assert _count(env["DATABASE_URL"], "search_sync_state") == 0
    status = json.loads(cli("search", "status", "--json", env=env).stdout)["indices"]
    assert all(entry["documents"] == 0 for entry in status.values())
