"""Backups and restore checks on the real PostgreSQL of the test stack."""

from __future__ import annotations

import json
import shutil

import psycopg
import pytest

from orchestrator_data.backups import (
    BackupKeyError,
    BackupNotFound,
    BackupToolError,
    create_backup,
    get_backup,
    latest_restore_checked,
    latest_verified,
    list_backups,
    restore,
    restore_check,
    verify_backup,
)
from orchestrator_data.backups import _pg
from orchestrator_data.postgres import models
from orchestrator_data.urls import libpq_url
from tests.orchestrator_data.backups.conftest import flip_bit, scratch_databases

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def plain_backup(seeded_url, tmp_path_factory):
    backup_dir = tmp_path_factory.mktemp("backups")
    return create_backup(seeded_url, backup_dir)


def copy_backup(entry, tmp_path):
    """A private copy of a backup to tamper with."""
    shutil.copytree(entry.path, tmp_path / entry.id)
    return get_backup(tmp_path, entry.id)


def no_create(monkeypatch) -> list[str]:
    created: list[str] = []
    original = restore._create_database

    def spy(url, name):
        created.append(name)
        return original(url, name)

    monkeypatch.setattr(restore, "_create_database", spy)
    return created


def test_manifest_describes_the_snapshot(plain_backup, seeded_url):
    m = plain_backup.manifest
    assert plain_backup.path.name == plain_backup.id and plain_backup.dump_path.is_file()
    assert not plain_backup.encrypted and plain_backup.compressed and m["encryption"] is None
    assert plain_backup.server_version.startswith("18") and m["pg_dump_version"].startswith("18")
    assert plain_backup.migration_head and plain_backup.migration_head == m["migration_head"]
    assert plain_backup.created_at.tzinfo is not None and plain_backup.finished_at >= plain_backup.created_at
    assert plain_backup.size_bytes == plain_backup.dump_path.stat().st_size
    expected_tables = {t.name for t in models.metadata.sorted_tables} | {"alembic_version"}
    assert expected_tables <= set(m["tables"])
    with psycopg.connect(libpq_url(seeded_url)) as conn:
        assert m["tables"]["executions"]["rows"] == conn.execute("SELECT count(*) FROM executions").fetchone()[0] == 1500
    # read back right after writing: verified, not yet restore-checked
    assert plain_backup.verified_ok is True and plain_backup.verified_at is not None
    assert json.loads((plain_backup.path / "integrity.json").read_text())["sha256"] == plain_backup.sha256
    assert plain_backup.restore_check_ok is None and plain_backup.restore_checked_at is None
    assert not any(p.name.startswith(".tmp-") for p in plain_backup.path.parent.iterdir())


def test_round_trip_every_checksum_equal(plain_backup, seeded_url, stack):
    result = restore_check(seeded_url, plain_backup.path.parent, "latest")
    assert result.ok, result.differences
    assert result.stage == "done" and result.differences == []
    assert result.tables_compared == len(plain_backup.manifest["tables"])
    assert result.restore_duration_s > 0 and result.restored_size_bytes > 0
    assert result.scratch_database.startswith("restore_check_")
    assert scratch_databases(stack) == []
    entry = get_backup(plain_backup.path.parent, plain_backup.id)
    assert entry.restore_check_ok is True and entry.restore_checked_at == result.checked_at
    assert latest_restore_checked(plain_backup.path.parent).id == plain_backup.id
    assert latest_verified(plain_backup.path.parent).id == plain_backup.id
    assert verify_backup(plain_backup.path.parent, plain_backup.id).ok


def test_encrypted_round_trip_and_wrong_key(seeded_url, tmp_path, key, monkeypatch, stack):
    entry = create_backup(seeded_url, tmp_path, encryption_key=key)
    assert entry.encrypted and entry.dump_path.name.endswith(".enc")
    assert entry.manifest["encryption"]["algorithm"].startswith("AES-256-GCM")
    assert key.hex() not in (entry.path / "manifest.json").read_text()
    assert not entry.dump_path.read_bytes()[:5] == b"PGDMP"   # pg_dump's magic is not readable at rest
    verified = verify_backup(tmp_path, entry.id, encryption_key=key)
    assert verified.ok and verified.authenticated is True

    wrong = bytes(32)
    with pytest.raises(BackupKeyError, match="wrong encryption key"):
        verify_backup(tmp_path, entry.id, encryption_key=wrong)
    created = no_create(monkeypatch)
    with pytest.raises(BackupKeyError, match="wrong encryption key"):
        restore_check(seeded_url, tmp_path, entry.id, encryption_key=wrong)
    with pytest.raises(BackupKeyError, match="is encrypted"):
        restore_check(seeded_url, tmp_path, entry.id)
    assert scratch_databases(stack) == [] and created == []

    monkeypatch.undo()
    result = restore_check(seeded_url, tmp_path, entry.id, encryption_key=key)
    assert result.ok, result.differences
    assert not any(p.name.startswith(".restore-") for p in tmp_path.iterdir())  # decrypted copy removed


def test_flipped_bit_is_caught_before_any_restore(plain_backup, seeded_url, tmp_path, monkeypatch, stack):
    entry = copy_backup(plain_backup, tmp_path)
    flip_bit(entry.dump_path)
    result = verify_backup(tmp_path, entry.id)
    assert not result.ok and not result.sha256_ok and "sha256" in result.problems[0]
    created = no_create(monkeypatch)
    checked = restore_check(seeded_url, tmp_path, entry.id)
    assert not checked.ok and checked.stage == "integrity" and "sha256" in checked.differences[0]
    assert created == [] and checked.scratch_database is None and scratch_databases(stack) == []
    # both records say so: the sha256 re-check (verify, then the restore check's own) and the restore check
    assert get_backup(tmp_path, entry.id).verified_ok is False
    assert get_backup(tmp_path, entry.id).restore_check_ok is False
    assert latest_verified(tmp_path) is None


def test_tampered_encrypted_chunk_with_forged_manifest_hash(seeded_url, tmp_path, key, monkeypatch, stack):
    """Even if the manifest's sha256 is rewritten to match, a changed chunk fails authentication."""
    entry = create_backup(seeded_url, tmp_path, encryption_key=key)
    flip_bit(entry.dump_path)
    manifest_path = entry.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = restore.file_sha256(entry.dump_path)[0]
    manifest_path.write_text(json.dumps(manifest))
    created = no_create(monkeypatch)
    result = restore_check(seeded_url, tmp_path, entry.id, encryption_key=key)
    assert not result.ok and result.stage == "integrity" and "authentication" in result.differences[0]
    assert created == [] and scratch_databases(stack) == []


def point_manifest_at(entry, file: str, target) -> None:
    """Rewrite the manifest to name `file`, with `target`'s true sha256 and size (a consistent forgery)."""
    manifest_path = entry.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"], manifest["size_bytes"] = restore.file_sha256(target)
    manifest["file"] = file
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink", "subdirectory"])
def test_a_manifest_naming_a_file_outside_its_directory_is_corrupt(plain_backup, seeded_url, tmp_path,
                                                                    monkeypatch, stack, how):
    """A sound dump outside the backup's directory, named by the manifest with its true hash: verify
    and restore-check must refuse it as corrupt, not vouch for it or restore from it."""
    catalog, elsewhere = tmp_path / "catalog", tmp_path / "elsewhere"
    catalog.mkdir()
    elsewhere.mkdir()
    entry = copy_backup(plain_backup, catalog)
    outside = elsewhere / "dump.pgc"
    shutil.copy(entry.path / "dump.pgc", outside)
    (entry.path / "dump.pgc").unlink()
    if how == "relative":
        point_manifest_at(entry, "../../elsewhere/dump.pgc", outside)
    elif how == "absolute":
        point_manifest_at(entry, str(outside), outside)
    elif how == "symlink":
        (entry.path / "dump.pgc").symlink_to(outside)
        point_manifest_at(entry, "dump.pgc", outside)
    else:  # a separator, even to a place inside the directory
        (entry.path / "sub").mkdir()
        shutil.copy(outside, entry.path / "sub" / "dump.pgc")
        point_manifest_at(entry, "sub/dump.pgc", outside)
    verified = verify_backup(catalog, entry.id)
    assert not verified.ok and verified.actual_sha256 is None
    assert "backup directory" in verified.problems[0], verified.problems
    created = no_create(monkeypatch)
    checked = restore_check(seeded_url, catalog, entry.id)
    assert not checked.ok and checked.stage == "integrity" and "backup directory" in checked.differences[0]
    assert created == [] and scratch_databases(stack) == []
    assert get_backup(catalog, entry.id).restore_check_ok is False
    assert get_backup(catalog, entry.id).verified_ok is False


def test_a_symlink_to_a_file_of_its_own_directory_is_followed(plain_backup, tmp_path):
    entry = copy_backup(plain_backup, tmp_path)
    (entry.path / "dump.pgc").rename(entry.path / "dump-real.pgc")
    (entry.path / "dump.pgc").symlink_to("dump-real.pgc")
    assert verify_backup(tmp_path, entry.id).ok


def test_mismatch_fails_and_lists_differences(plain_backup, seeded_url, tmp_path, stack):
    entry = copy_backup(plain_backup, tmp_path)
    manifest_path = entry.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tables"]["executions"]["checksum"] = "md5sum64:0"
    manifest["tables"]["users"]["rows"] += 1
    manifest["migration_head"] = "9999"
    manifest_path.write_text(json.dumps(manifest))
    result = restore_check(seeded_url, tmp_path, entry.id)
    assert not result.ok and result.stage == "compare"
    assert result.differences[0].startswith("migration head")
    assert any("executions: checksum" in d for d in result.differences)
    assert any("users:" in d and "rows restored" in d for d in result.differences)
    assert len(result.differences) == 3
    assert scratch_databases(stack) == []
    recorded = json.loads((entry.path / "verification.json").read_text())
    assert recorded["ok"] is False and recorded["differences"] == result.differences
    assert latest_restore_checked(tmp_path) is None
    assert latest_verified(tmp_path).id == entry.id  # the file itself is intact


def test_failed_restore_still_drops_the_scratch_database(plain_backup, seeded_url, tmp_path, monkeypatch, stack):
    entry = copy_backup(plain_backup, tmp_path)

    def boom(scratch_url, archive, *progress):
        raise RuntimeError("pg_restore crashed")

    monkeypatch.setattr(restore, "_pg_restore", boom)
    created = no_create(monkeypatch)
    with pytest.raises(RuntimeError):
        restore_check(seeded_url, tmp_path, entry.id)
    assert len(created) == 1 and scratch_databases(stack) == []


def test_changes_after_the_snapshot_are_not_in_the_backup(seeded_url, tmp_path, stack):
    """A second backup after a change differs from the first; the first still restores to its manifest."""
    first = create_backup(seeded_url, tmp_path)
    with psycopg.connect(libpq_url(seeded_url), autocommit=True) as conn:
        conn.execute("UPDATE marketplace_items SET downloads = downloads + 1 WHERE id = (SELECT id FROM marketplace_items ORDER BY id LIMIT 1)")
    try:
        second = create_backup(seeded_url, tmp_path)
        assert first.manifest["tables"]["marketplace_items"]["checksum"] != second.manifest["tables"]["marketplace_items"]["checksum"]
        assert ids_newest_first(tmp_path) == [second.id, first.id]
        # the first backup's manifest with the second's checksums: the restore check must see the difference
        manifest = first.manifest
        manifest["tables"]["marketplace_items"] = second.manifest["tables"]["marketplace_items"]
        (first.path / "manifest.json").write_text(json.dumps(manifest))
        result = restore_check(seeded_url, tmp_path, first.id)
        assert not result.ok and any("marketplace_items: checksum" in d for d in result.differences)
    finally:
        with psycopg.connect(libpq_url(seeded_url), autocommit=True) as conn:
            conn.execute("UPDATE marketplace_items SET downloads = downloads - 1 WHERE id = (SELECT id FROM marketplace_items ORDER BY id LIMIT 1)")
    assert scratch_databases(stack) == []


def ids_newest_first(path):
    return [e.id for e in list_backups(path)]


def test_older_pg_restore_is_refused(plain_backup, seeded_url, monkeypatch, stack):
    real = _pg.tool_version
    monkeypatch.setattr(_pg, "tool_version", lambda name: "17.2" if name == "pg_restore" else real(name))
    with pytest.raises(BackupToolError, match="older than the pg_dump"):
        restore_check(seeded_url, plain_backup.path.parent, plain_backup.id)
    assert scratch_databases(stack) == []


def test_unknown_backup(tmp_path, seeded_url):
    with pytest.raises(BackupNotFound):
        verify_backup(tmp_path, "20200101T000000Z-dead")
    with pytest.raises(BackupNotFound):
        restore_check(seeded_url, tmp_path, "latest")


def test_backup_as_the_readonly_login_sees_every_tenant(seeded_url, tmp_path, stack):
    """The documented backup login (member of orchestrator_readonly, no superuser) dumps every row."""
    import secrets as pysecrets

    from urllib.parse import urlsplit, urlunsplit

    from tests.databases import admin_url

    role, password = f"od_backup_{pysecrets.token_hex(4)}", pysecrets.token_urlsafe(16)
    with psycopg.connect(admin_url(stack), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE orchestrator_readonly")
    # no grants here: revision 0003 gives the read-only role what pg_dump reads
    try:
        parts = urlsplit(seeded_url)
        url = urlunsplit((parts.scheme, f"{role}:{password}@{parts.hostname}:{parts.port}", parts.path,
                          parts.query, ""))
        entry = create_backup(url, tmp_path)
        superuser_entry = create_backup(seeded_url, tmp_path)
        assert entry.manifest["tables"] == superuser_entry.manifest["tables"]
        assert entry.manifest["tables"]["executions"]["rows"] == 1500
        assert restore_check(seeded_url, tmp_path, entry.id).ok
    finally:
        with psycopg.connect(admin_url(stack), autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")
    assert scratch_databases(stack) == []


def test_writes_during_the_backup_do_not_break_consistency(seeded_url, tmp_path, stack):
    """Commits landing while pg_dump and the checksums run: both read the one exported snapshot, so
    the restored database still equals the manifest exactly."""
    import threading

    stop, commits = threading.Event(), []

    def writer():
        with psycopg.connect(libpq_url(seeded_url), autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("UPDATE executions SET prompt_tokens = prompt_tokens + 1 "
                             "WHERE id = (SELECT id FROM executions ORDER BY random() LIMIT 1)")
                commits.append(1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        entries = [create_backup(seeded_url, tmp_path) for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    assert len(commits) > 10
    assert len({e.manifest["tables"]["executions"]["checksum"] for e in entries}) > 1  # the data did move
    result = restore_check(seeded_url, tmp_path, entries[1].id)
    assert result.ok, result.differences
    assert scratch_databases(stack) == []
