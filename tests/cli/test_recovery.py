"""`orchestrator-data recovery ...` on a cluster and archive of the module's own (tests/recovery_chain.py):
what a user runs, and every refusal as one line, exit 2, nothing written."""

from __future__ import annotations

import base64
import json
import socket
from datetime import UTC, datetime, timedelta

import pytest

from tests.recovery_chain import stop_restored

pytestmark = pytest.mark.integration


@pytest.fixture
def chain(recovery_chain):
    return recovery_chain


def _nothing_written(chain, into) -> None:
    assert not into.exists() or not any(into.iterdir())
    assert not [p for p in chain.layout.root.iterdir() if p.name.startswith(".tmp")]


def _refused(result, pattern: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and pattern in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_restore_to_a_named_point_reports_what_it_recovered_to(cli, chain):
    into = chain.root / "by-name"
    result = cli("recovery", "restore", "--target-name", "rp-5", "--into", str(into), "--json", env=chain.env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    try:
        assert chain.rows(into, report["port"]) == [1, 2, 3, 4, 5]
        assert report["stopped"].startswith('recovery stopping at restore point "rp-5"')
        assert report["recovered_to_lsn"] and report["seconds"] > 0
        assert "@" in report["url"] and ":" not in report["url"].split("@")[0].removeprefix("postgresql://")
    finally:
        stop_restored(into)


def test_status_list_verify_and_points(cli, chain):
    status = cli("recovery", "status", "--json", env=chain.env)
    report = json.loads(status.stdout)
    assert report["archiver_running"] is True  # the CLI archiver keeps its pid file in RECOVERY_DIR
    assert report["streaming"] and report["gaps"] == [] and report["base_backups"] >= 2  # other tests may add
    assert status.returncode == 0, status.stdout
    listed = json.loads(cli("recovery", "list", "--json", env=chain.env).stdout)
    assert [b["kind"] for b in listed][:2] == ["full", "incremental"] and listed[1]["parent"] == listed[0]["id"]
    verified = cli("recovery", "verify", "latest", env=chain.env)
    assert verified.returncode == 0 and "verified" in verified.stdout
    made = cli("recovery", "point", "create", "cli-point", env=chain.env)
    assert made.returncode == 0, made.stderr
    _refused(cli("recovery", "point", "create", "cli-point", env=chain.env), "already exists")
    names = [p["name"] for p in json.loads(cli("recovery", "point", "list", "--json", env=chain.env).stdout)]
    assert names.count("cli-point") == 1 and "rp-5" in names
    dry = json.loads(cli("recovery", "prune", "--dry-run", "--json", env=chain.env).stdout)
    assert dry["delete_backups"] == [] and dry["dry_run"] is True


@pytest.mark.parametrize("args, pattern", [
    (["--target-lsn", "zz/1"], "is not an LSN"),
    (["--target-time", "yesterday"], "is not an ISO 8601 time"),
    (["--target-xid", "-4"], "is not a transaction id"),
    (["--target-time", (datetime.now(UTC) + timedelta(days=1)).isoformat()], "is in the future"),
    (["--target-lsn", "0/1", "--latest"], "give exactly one of"),
    (["--target-time", "2001-01-01T00:00:00Z"], "outside the recovery window"),
    (["--target-lsn", "FF/0"], "outside the recovery window"),
    (["--target-xid", "4000000"], "has no commit or abort inside the recovery window"),
])
def test_bad_targets_are_refused_and_nothing_is_written(cli, chain, args, pattern):
    into = chain.root / "refused"
    _refused(cli("recovery", "restore", *args, "--into", str(into), env=chain.env), pattern)
    _nothing_written(chain, into)


def test_a_directory_that_is_not_empty_is_refused(cli, chain):
    into = chain.root / "busy"
    into.mkdir()
    (into / "keep.txt").write_text("mine")
    _refused(cli("recovery", "restore", "--latest", "--into", str(into), env=chain.env), "is not empty")
    assert [p.name for p in into.iterdir()] == ["keep.txt"]


def test_a_port_in_use_is_refused(cli, chain):
    into = chain.root / "port"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        _refused(cli("recovery", "restore", "--latest", "--into", str(into), "--port", str(port), env=chain.env),
                 "is in use")
    _nothing_written(chain, into)


def test_in_place_needs_confirm(cli, chain):
    _refused(cli("recovery", "restore", "--latest", "--in-place", env=chain.env), "add --confirm")


def test_migrate_up_makes_a_restore_point_before_each_migration(cli, chain):
    from tests.databases import REVISIONS

    with chain.connect() as conn:
        conn.execute("CREATE DATABASE migrated")
    env = {**chain.env, "DATABASE_URL": chain.cluster.url("migrated")}
    result = cli("migrate", "up", "--to", REVISIONS[0], env=env)
    assert result.returncode == 0, result.stderr
    names = [p["name"] for p in json.loads(cli("recovery", "point", "list", "--json", env=env).stdout)]
    assert f"before-{REVISIONS[0]}" in names
    into = chain.root / "before-migration"
    restored = cli("recovery", "restore", "--target-name", f"before-{REVISIONS[0]}", "--into", str(into), "--json",
                   env=env)
    assert restored.returncode == 0, restored.stderr
    port = json.loads(restored.stdout)["port"]
    try:
        import psycopg

        with psycopg.connect(host=str(into), port=port, user="postgres", dbname="migrated") as conn:
            tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        # just before the migration: its ledger (made by `migrate up` first), none of the migration's tables
        assert "organizations" not in tables and tables <= {"_migration_history", "alembic_version"}
        with psycopg.connect(chain.cluster.url("migrated")) as conn:
            assert conn.execute("SELECT to_regclass('organizations')").fetchone()[0] is not None
    finally:
        stop_restored(into)


def test_after_a_key_rotation_the_chain_still_opens_and_the_keys_list_counts_it(cli, chain, tmp_path):
    """The chain was encrypted with BACKUP_ENCRYPTION_KEY; rotate the ring: new base backups and WAL use the
    new key, the old ones still open (from the ring file alone), and `backup keys list` counts what each
    key encrypts, so a key in use is never retired by mistake."""
    from orchestrator_data.backups.crypto import key_id

    ring_file = tmp_path / "keys" / "backup-keys.json"
    ring_file.parent.mkdir()
    env = {**chain.env, "BACKUP_KEYRING_FILE": str(ring_file), "BACKUP_DIR": str(tmp_path / "backups")}
    rotated = cli("backup", "keys", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    old_id = key_id(chain.key)
    listed = json.loads(cli("backup", "keys", "list", "--json", env=env).stdout)
    [old] = [k for k in listed["keys"] if k["id"] == old_id]
    assert not old["current"] and old["base_backups"] >= 2 and old["wal_segments"] >= 1 and old["dumps"] == 0

    from_the_file_alone = {**env, "BACKUP_ENCRYPTION_KEY": ""}
    verified = cli("recovery", "verify", "latest", env=from_the_file_alone)
    assert verified.returncode == 0 and "verified" in verified.stdout, verified.stderr
    assert base64.b64encode(chain.key).decode() not in verified.stdout + verified.stderr + rotated.stdout

    # a ring that lacks the chain's key: refused naming the key id, never a key
    other = tmp_path / "other" / "backup-keys.json"
    other.parent.mkdir()
    assert cli("backup", "keys", "rotate", env={**from_the_file_alone, "BACKUP_KEYRING_FILE": str(other)}).returncode == 0
    refused = cli("recovery", "verify", "latest", env={**from_the_file_alone, "BACKUP_KEYRING_FILE": str(other)})
    assert refused.returncode == 2 and old_id in refused.stderr, refused.stdout + refused.stderr
    missing = cli("backup", "keys", "list", env={**from_the_file_alone, "BACKUP_KEYRING_FILE": str(other)})
    assert missing.returncode == 1 and "base backup(s)" in missing.stderr and old_id in missing.stderr


def test_check_proves_a_point_and_names_the_tables_compared(cli, chain):
    result = cli("recovery", "check", env=chain.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "markers" in result.stdout and "table(s) equal to the source at the target" in result.stdout
    assert "0 table(s)" not in result.stdout   # marks, at least
