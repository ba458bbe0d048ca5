"""`orchestrator-data migrate up|status|rollback` through the installed console script: exit codes,
messages, and no secret in any output."""

from __future__ import annotations

import json

import psycopg
import pytest

from orchestrator_data import urls
from tests.databases import HEAD, REVISIONS

pytestmark = pytest.mark.integration


def _secrets(stack) -> list[str]:
    return list(json.loads((stack.root / "secrets.json").read_text()).values())


def _run(cli, stack, url, *args, environment="testing"):
    result = cli("migrate", *args, env={"DATABASE_URL": url, "ENVIRONMENT": environment})
    for secret in _secrets(stack):
        assert secret not in result.stdout and secret not in result.stderr
    return result


def test_up_applies_then_finds_nothing_to_do(cli, stack, database):
    first = _run(cli, stack, database, "up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "0001" in first.stdout and HEAD in first.stdout and " ms" in first.stdout
    assert "security check" in first.stdout
    second = _run(cli, stack, database, "up")
    assert second.returncode == 0 and f"up to date at {HEAD}" in second.stdout


def test_up_to_a_revision_and_status(cli, stack, database):
    assert _run(cli, stack, database, "up", "--to", "0001").returncode == 0
    table = _run(cli, stack, database, "status")
    assert table.returncode == 0, table.stderr
    assert f"at 0001, head {HEAD}" in table.stdout and "applied" in table.stdout and "pending" in table.stdout
    result = _run(cli, stack, database, "status", "--json")
    assert result.returncode == 0
    state = json.loads(result.stdout)
    assert state["current"] == "0001" and state["pending"] == REVISIONS[1:]
    assert [(r["revision"], r["state"]) for r in state["revisions"]] == [("0001", "applied")] + [(r, "pending") for r in REVISIONS[1:]]
    assert len(state["revisions"][0]["file_checksum"]) == 64 and state["revisions"][0]["applied_at"]


def test_unknown_revisions_exit_2(cli, stack, database):
    up = _run(cli, stack, database, "up", "--to", "9999")
    assert up.returncode == 2 and "unknown revision '9999'" in up.stderr
    rollback = _run(cli, stack, database, "rollback", "nope")
    assert rollback.returncode == 2 and "unknown revision 'nope'" in rollback.stderr


def test_rollback_in_production_needs_confirm(cli, stack, database):
    assert _run(cli, stack, database, "up").returncode == 0
    refused = _run(cli, stack, database, "rollback", "0001", environment="production")
    assert refused.returncode == 2
    assert "refusing to roll back the production database to 0001 without --confirm" in refused.stderr
    assert json.loads(_run(cli, stack, database, "status", "--json").stdout)["current"] == HEAD
    done = _run(cli, stack, database, "rollback", "0001", "--confirm", environment="production")
    assert done.returncode == 0, done.stderr
    assert f"downgrade: {HEAD} → 0001" in done.stdout
    # outside production no confirmation is asked
    assert _run(cli, stack, database, "rollback", "base").returncode == 0
    again = _run(cli, stack, database, "rollback", "base")
    assert again.returncode == 0 and "nothing to roll back" in again.stdout


def test_an_edited_revision_fails_naming_it(cli, stack, database):
    assert _run(cli, stack, database, "up").returncode == 0
    with psycopg.connect(urls.libpq_url(database), autocommit=True) as conn:  # as if 0001's file had changed
        conn.execute("UPDATE _migration_history SET checksum = repeat('0', 64) WHERE revision = '0001'")
    up = _run(cli, stack, database, "up")
    assert up.returncode == 1
    assert "revision 0001 was edited after it was applied" in up.stderr
    status = _run(cli, stack, database, "status")
    assert status.returncode == 1 and "revision 0001 is edited" in status.stderr


def test_a_broken_security_setup_fails_the_upgrade(cli, stack, database):
    assert _run(cli, stack, database, "up").returncode == 0
    with psycopg.connect(urls.libpq_url(database), autocommit=True) as conn:
        conn.execute("ALTER TABLE workflows NO FORCE ROW LEVEL SECURITY")
    result = _run(cli, stack, database, "up")
    assert result.returncode == 1
    assert "security check failed" in result.stderr and "workflows: row-level security is not forced" in result.stderr


def test_an_unreachable_server_exits_1_without_the_password(cli, stack):
    from orchestrator_data.stack.common import free_port

    url = f"postgresql://postgres:Unreach4blePw@127.0.0.1:{free_port()}/orchestrator"
    result = cli("migrate", "up", env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert "PostgreSQL:" in result.stderr and "Unreach4blePw" not in result.stdout + result.stderr
