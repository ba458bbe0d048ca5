"""`orchestrator-data backup ...` as a user runs it: exit codes, output, and no secret anywhere."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest

from tests.orchestrator_data.backups.conftest import database_password, flip_bit, scratch_databases

pytestmark = pytest.mark.integration


def test_backup_commands(cli, migrated_url, tmp_path, stack):
    key = base64.b64encode(os.urandom(32)).decode()
    env = {"DATABASE_URL": migrated_url, "BACKUP_DIR": str(tmp_path / "backups"), "BACKUP_ENCRYPTION_KEY": key}
    secrets = [database_password(migrated_url), key]
    outputs = []

    def run(*args, expect: int, extra: dict | None = None):
        done = cli("backup", *args, env={**env, **(extra or {})})
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        return done

    created = run("create", expect=0)
    assert "encrypted" in created.stdout
    assert "checksums: " in created.stdout and "tables, done in " in created.stdout  # plain progress, piped
    assert "read back: " in created.stdout and "\x1b" not in created.stdout
    listing = json.loads(run("list", "--json", expect=0).stdout)
    listed = listing["backups"]
    assert listing["temporary"] == []  # the temp dir became the backup
    assert len(listed) == 1 and listed[0]["encrypted"] and listed[0]["verified_ok"] is True
    assert listed[0]["restore_check_ok"] is None
    backup_id = listed[0]["id"]
    assert backup_id in run("list", expect=0).stdout
    assert "every chunk authenticated" in run("verify", "latest", expect=0).stdout
    checked = run("restore-check", backup_id, expect=0).stdout
    assert "matches its manifest" in checked
    for step in ("verify: ", "restore: ", "compare: "):
        assert step in checked, checked
    assert json.loads(run("list", "--json", expect=0).stdout)["backups"][0]["restore_check_ok"] is True

    # bad input: 2
    assert "no backup" in run("verify", "20200101T000000Z-dead", expect=2).stderr
    assert "BACKUP_ENCRYPTION_KEY" in run("list", expect=2, extra={"BACKUP_ENCRYPTION_KEY": "not-a-key"}).stderr
    wrong = base64.b64encode(bytes(32)).decode()
    secrets.append(wrong)
    assert "wrong encryption key" in run("restore-check", "latest", expect=2,
                                         extra={"BACKUP_ENCRYPTION_KEY": wrong}).stderr
    assert "is encrypted" in run("restore-check", "latest", expect=2, extra={"BACKUP_ENCRYPTION_KEY": ""}).stderr

    # a failed check: 1
    flip_bit(tmp_path / "backups" / backup_id / "dump.pgc.enc")
    assert "sha256" in run("verify", backup_id, expect=1).stderr
    assert "FAILED at integrity" in run("restore-check", backup_id, expect=1).stderr

    # retention: the only backup is no longer verified, 0/0 policy deletes it (dry run first)
    nothing = ("--window-days", "0", "--keep-last", "0")
    assert "would delete" in run("prune", *nothing, "--keep-daily", "0", "--keep-weekly", "0", "--dry-run",
                                 expect=0).stdout
    assert len(json.loads(run("list", "--json", expect=0).stdout)["backups"]) == 1
    # two days, so a test that crosses midnight UTC still keeps it by the calendar too
    pruned = json.loads(run("prune", *nothing, "--keep-daily", "2", "--keep-weekly", "0", "--json", expect=0).stdout)
    assert pruned["kept"] == [backup_id] and pruned["deleted"] == []
    # the defaults: the recovery window (RECOVERY_WINDOW_DAYS) keeps it, and says so
    by_window = json.loads(run("prune", "--json", expect=0).stdout)
    assert by_window["kept"] == [backup_id] and by_window["rule"]["window_days"] == 7
    assert "within the 7-day window" in by_window["reasons"][backup_id]

    # a server that refuses the login: 1, and the password given is not echoed
    bad_url = migrated_url.replace(f":{database_password(migrated_url)}@", ":Wr0ngPassw0rdXyz@")
    secrets.append("Wr0ngPassw0rdXyz")
    run("create", expect=1, extra={"DATABASE_URL": bad_url})

    assert scratch_databases(stack) == []
    everything = "\n".join(outputs)
    for secret in secrets:
        assert secret and secret not in everything


def test_a_manifest_pointing_outside_its_directory_is_corrupt(cli, database, tmp_path, stack):
    """A manifest naming `../../<a file elsewhere>` with that file's sha256 and size: verify and
    restore-check exit 1 (corrupt), they do not vouch for the file or restore from it."""
    env = {"DATABASE_URL": database, "BACKUP_DIR": str(tmp_path / "backups"), "BACKUP_ENCRYPTION_KEY": ""}
    assert cli("backup", "create", env=env).returncode == 0
    backup_id = json.loads(cli("backup", "list", "--json", env=env).stdout)["backups"][0]["id"]
    outside = tmp_path / "not-a-backup.txt"
    outside.write_text("any file the CLI's user can read\n")
    manifest_path = tmp_path / "backups" / backup_id / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest.update(file="../../not-a-backup.txt", size_bytes=outside.stat().st_size,
                    sha256=hashlib.sha256(outside.read_bytes()).hexdigest())
    manifest_path.write_text(json.dumps(manifest))
    for command in ("verify", "restore-check"):
        done = cli("backup", command, backup_id, env=env)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "'../../not-a-backup.txt': not a plain file name inside the backup directory" in done.stderr
        assert "matches" not in done.stdout
    assert scratch_databases(stack) == []
