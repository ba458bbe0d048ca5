"""The backup key ring: where it may live, rotation, lookup by the manifest's key id, and no key
material in any message, repr or log line."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat

import pytest

from orchestrator_data.backups import BackupKeyError, create_backup, restore_check, verify_backup
from orchestrator_data.backups.crypto import key_id
from orchestrator_data.backups.keys import KeyRing, KeyRingFileError, key_usage, read_key_ring, rotate_key
from tests.orchestrator_data.backups.conftest import key_text


def _forms(material: bytes) -> list[str]:
    """Every spelling of a key that could leak: base64, hex, and the bytes' repr."""
    return [base64.b64encode(material).decode(), material.hex(), repr(material)[2:-1]]


@pytest.fixture
def places(tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    return backups, secrets / "backup-keys.json"


def test_rotation_adds_a_private_newest_key_and_keeps_the_older_ones(places):
    backups, ring_file = places
    env_key = os.urandom(32)
    first = rotate_key(ring_file, env_key, backups)
    assert stat.S_IMODE(ring_file.stat().st_mode) == 0o600
    assert first.count == 2 and first.imported is not None and first.imported.id == key_id(env_key)
    second = rotate_key(ring_file, env_key, backups)
    assert second.count == 3 and second.imported is None  # recorded once
    ring = read_key_ring(ring_file, env_key, backups)
    assert ring.ids == [key_id(env_key), first.key.id, second.key.id]
    assert ring.current.id == second.key.id and len(ring.current.material) == 32
    assert ring.get(first.key.id) == first.key.material and ring.get(key_id(env_key)) == env_key
    # the file alone opens every key, and nothing but the ring is left beside it (no temp file)
    assert read_key_ring(ring_file, None, backups).ids == ring.ids
    assert sorted(p.name for p in ring_file.parent.iterdir()) == [".backup-keys.json.lock", "backup-keys.json"]
    # a repr or str of a key or a ring holds no material
    for material in (env_key, first.key.material, second.key.material):
        for text in (repr(ring), str(ring.current), repr(second), ring.where()):
            assert not any(form in text for form in _forms(material))


def test_a_missing_key_is_named_by_its_id(places):
    backups, ring_file = places
    rotate_key(ring_file, None, backups)
    ring = read_key_ring(ring_file, None, backups)
    with pytest.raises(BackupKeyError, match="no key with id 0123456789abcdef in the key ring") as missing:
        ring.get("0123456789abcdef")
    assert ring.current.id in str(missing.value)
    assert not any(form in str(missing.value) for form in _forms(ring.current.material))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o606])
def test_a_ring_open_to_group_or_others_is_refused(places, mode):
    backups, ring_file = places
    rotate_key(ring_file, None, backups)
    ring_file.chmod(mode)
    with pytest.raises(KeyRingFileError, match=rf"open to group or others \(mode {mode:04o}\); run chmod 600"):
        read_key_ring(ring_file, None, backups)
    with pytest.raises(KeyRingFileError):
        rotate_key(ring_file, None, backups)
    ring_file.chmod(0o600)
    assert len(read_key_ring(ring_file, None, backups).keys) == 1


def test_a_ring_inside_the_backup_directory_is_refused(places, tmp_path):
    backups, _ = places
    inside = backups / "keys" / "ring.json"
    inside.parent.mkdir()
    with pytest.raises(KeyRingFileError, match="is inside BACKUP_DIR"):
        rotate_key(inside, None, backups)
    assert not inside.exists()
    # also through a symlink that leads into it
    (tmp_path / "link").symlink_to(backups)
    with pytest.raises(KeyRingFileError, match="is inside BACKUP_DIR"):
        read_key_ring(tmp_path / "link" / "ring.json", None, backups, missing_ok=True)


def test_a_set_but_missing_or_malformed_ring_is_refused(places):
    backups, ring_file = places
    with pytest.raises(KeyRingFileError, match="does not exist; create it with `orchestrator-data backup keys rotate`"):
        read_key_ring(ring_file, None, backups)
    assert read_key_ring(ring_file, None, backups, missing_ok=True).keys == ()
    rotate_key(ring_file, None, backups)
    document = json.loads(ring_file.read_text())
    material = document["keys"][0]["key"]
    document["keys"][0]["id"] = "ffffffffffffffff"
    ring_file.write_text(json.dumps(document))
    with pytest.raises(KeyRingFileError, match="is not the id of its key") as forged:
        read_key_ring(ring_file, None, backups)
    assert material not in str(forged.value)
    document["keys"][0] |= {"id": None, "key": "c2hvcnQ="}
    ring_file.write_text(json.dumps(document))
    with pytest.raises(KeyRingFileError, match="decodes to 5 bytes; expected 32"):
        read_key_ring(ring_file, None, backups)
    with pytest.raises(KeyRingFileError, match="BACKUP_KEYRING_FILE is unset"):
        rotate_key(None, None, backups)


def test_without_a_ring_file_the_single_key_is_the_ring(places):
    backups, _ = places
    env_key = os.urandom(32)
    ring = read_key_ring(None, env_key, backups)
    assert ring.ids == [key_id(env_key)] and ring.current.source == "BACKUP_ENCRYPTION_KEY"
    assert read_key_ring(None, None, backups).current is None  # new backups are not encrypted


@pytest.mark.integration
def test_a_rotated_ring_restores_an_old_dump_and_new_dumps_use_the_new_key(migrated_url, places, caplog, stack):
    caplog.set_level(logging.DEBUG)
    backups, ring_file = places
    env_key = os.urandom(32)
    old = create_backup(migrated_url, backups, keys=read_key_ring(ring_file, env_key, backups, missing_ok=True))
    assert old.manifest["encryption"]["key_id"] == key_id(env_key)

    rotated = rotate_key(ring_file, env_key, backups)
    ring = read_key_ring(ring_file, env_key, backups)
    new = create_backup(migrated_url, backups, keys=ring)
    assert new.manifest["encryption"]["key_id"] == rotated.key.id != key_id(env_key)
    # every backup opens with the key its manifest names, from the same ring
    for entry in (old, new):
        assert verify_backup(backups, entry.id, keys=ring).authenticated is True
        checked = restore_check(migrated_url, backups, entry.id, keys=ring)
        assert checked.ok, checked.differences
    uses = {use.key_id: (use.dumps, use.current) for use in key_usage(ring, backups)}
    assert uses == {key_id(env_key): (1, False), rotated.key.id: (1, True)}

    # the ring file alone, once BACKUP_ENCRYPTION_KEY is unset, still opens the old dump
    assert restore_check(migrated_url, backups, old.id, keys=read_key_ring(ring_file, None, backups)).ok
    # a ring that lost the old key names that key's id
    with pytest.raises(BackupKeyError, match=f"encrypted with key id {key_id(env_key)}, which is not in the key ring"):
        restore_check(migrated_url, backups, old.id, keys=KeyRing.of(rotated.key.material))
    uses = key_usage(KeyRing.of(rotated.key.material), backups)
    assert [(u.key_id, u.key is None, u.dumps) for u in uses] == [(rotated.key.id, False, 1),
                                                                  (key_id(env_key), True, 1)]
    for material in (env_key, rotated.key.material):
        for form in _forms(material):
            assert form not in caplog.text
            assert form not in "".join(p.read_text() for p in backups.rglob("*.json"))
    assert key_text(env_key) not in caplog.text
