"""`orchestrator-data backup keys rotate|list` and the dumps across a rotation, as a user runs them:
exit codes, what is printed, and never a key."""

from __future__ import annotations

import base64
import json
import os
import re
import stat

import pytest

pytestmark = pytest.mark.integration


def _ring_materials(ring_file) -> list[str]:
    return [k["key"] for k in json.loads(ring_file.read_text())["keys"]]


def test_rotate_list_and_restore_across_a_rotation(cli, migrated_url, tmp_path):
    env_key = base64.b64encode(os.urandom(32)).decode()
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    ring_file = secrets_dir / "backup-keys.json"
    env = {"DATABASE_URL": migrated_url, "BACKUP_DIR": str(tmp_path / "backups"), "BACKUP_ENCRYPTION_KEY": env_key,
           "BACKUP_KEYRING_FILE": str(ring_file)}
    outputs = []

    def run(*args, expect: int, extra: dict | None = None):
        done = cli("backup", *args, env={**env, **(extra or {})})
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        return done

    # before any rotation the ring file does not exist yet: `create` refuses rather than silently use less
    assert "does not exist; create it with `orchestrator-data backup keys rotate`" in run("create", expect=2).stderr
    old = run("create", expect=0, extra={"BACKUP_KEYRING_FILE": ""})
    old_id = json.loads(run("list", "--json", expect=0).stdout)["backups"][0]["id"]
    env_id = re.search(r"encrypted with key ([0-9a-f]{16})", old.stdout).group(1)

    rotated = run("keys", "rotate", expect=0).stdout
    new_id = re.search(r"new current key ([0-9a-f]{16}): 2 keys in ", rotated).group(1)
    assert f"BACKUP_ENCRYPTION_KEY (key {env_id}) recorded in the ring" in rotated
    assert stat.S_IMODE(ring_file.stat().st_mode) == 0o600
    assert f"encrypted with key {new_id}" in run("create", expect=0).stdout

    listed = json.loads(run("keys", "list", "--json", expect=0).stdout)
    assert listed["current"] == new_id and listed["keyring_file"] == str(ring_file)
    assert [(k["id"], k["current"], k["dumps"], k["in_ring"]) for k in listed["keys"]] == [
        (env_id, False, 1, True), (new_id, True, 1, True)]
    assert listed["keys"][1]["created_at"] and listed["keys"][0]["source"] == "BACKUP_ENCRYPTION_KEY"
    table = run("keys", "list", expect=0).stdout
    assert env_id in table and new_id in table

    # the old dump restores with the rotated ring, from the file alone
    checked = run("restore-check", old_id, expect=0, extra={"BACKUP_ENCRYPTION_KEY": ""}).stdout
    assert "matches its manifest" in checked

    # bad input: 2, nothing written
    ring_file.chmod(0o640)
    assert "open to group or others (mode 0640)" in run("create", expect=2).stderr
    assert "open to group or others" in run("keys", "rotate", expect=2).stderr
    ring_file.chmod(0o600)
    inside = tmp_path / "backups" / "keys.json"
    assert "is inside BACKUP_DIR" in run("keys", "rotate", expect=2, extra={"BACKUP_KEYRING_FILE": str(inside)}).stderr
    assert not inside.exists()
    assert "is inside BACKUP_DIR" in run("verify", old_id, expect=2, extra={"BACKUP_KEYRING_FILE": str(inside)}).stderr
    # a ring without the old key: the dump's key is named by its id
    other = secrets_dir / "other.json"
    run("keys", "rotate", expect=0, extra={"BACKUP_KEYRING_FILE": str(other), "BACKUP_ENCRYPTION_KEY": ""})
    lost = run("restore-check", old_id, expect=2, extra={"BACKUP_KEYRING_FILE": str(other), "BACKUP_ENCRYPTION_KEY": ""})
    assert f"encrypted with key id {env_id}, which is not in the key ring" in lost.stderr
    missing = run("keys", "list", expect=1, extra={"BACKUP_KEYRING_FILE": str(other), "BACKUP_ENCRYPTION_KEY": ""})
    assert f"2 dump(s), 0 base backup(s) and 0 WAL file(s) use keys the ring lacks: {', '.join(sorted([env_id, new_id]))}" in missing.stderr

    everything = "\n".join(outputs)
    for material in [env_key, *_ring_materials(ring_file), *_ring_materials(other)]:
        assert material not in everything
        assert base64.b64decode(material).hex() not in everything
