"""Copies off the machine, end to end on the real servers: a dump and the recovery chain pushed to the
session's S3 server (manifests last, verified, a second push copies nothing), then brought back from the
bucket alone — the local dump deleted, the chain's RECOVERY_DIR not given to the restore."""

from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest

from orchestrator_data.backups import create_backup, list_backups, restore_check
from orchestrator_data.offsite import catalogue, keys
from orchestrator_data.offsite.errors import OffsiteMissing, OffsiteRefused
from orchestrator_data.offsite.fetch import chain_workdir, dump_workdir, fetch_dump
from orchestrator_data.offsite.push import DIGEST_CACHE, push
from orchestrator_data.postgres.client import create_engine
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.recovery.restore import restore
from orchestrator_data.recovery.targets import parse_target
from tests.databases import migrated_copy
from tests.offsite_store import store_of
from tests.recovery_chain import stop_restored

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seeded_url(stack):
    with migrated_copy(stack, prefix="od_offsite") as url:
        engine = create_engine(url)
        try:
            seed(engine, "testing", SeedPlan(executions=100))
        finally:
            engine.dispose()
        yield url


def test_a_dump_goes_up_manifest_last_and_restores_from_the_bucket_alone(seeded_url, offsite_env, tmp_path):
    key = os.urandom(32)
    backup_dir = tmp_path / "backups"
    entry = create_backup(seeded_url, backup_dir, encryption_key=key)
    (backup_dir / ".tmp-20990101T000000Z-dead").mkdir()  # a backup being written is never copied
    store = store_of(offsite_env)

    report = push(store, backup_dir=backup_dir, recovery_root=None)
    assert [t.key for t in report.uploaded] == [keys.dump(entry.id, "dump.pgc.enc"),
                                                keys.dump(entry.id, keys.MANIFEST)]  # the manifest last
    assert report.dumps == [entry.id] and report.bucket_objects == 2 and report.newest_copy_at is not None
    found = catalogue.read(store)
    assert found.dumps == [entry.id] and found.incomplete == [] and found.wal_files == []
    again = push(store, backup_dir=backup_dir, recovery_root=None)
    assert again.uploaded == [] and len(again.skipped) == 2  # idempotent: nothing copied twice
    assert catalogue.verify(store, backup_dir=backup_dir, recovery_root=None).ok

    shutil.rmtree(backup_dir)  # the machine lost its backups
    elsewhere = tmp_path / "elsewhere"
    with dump_workdir(store, elsewhere, "latest") as (directory, backup_id):
        assert backup_id == entry.id
        result = restore_check(seeded_url, directory, backup_id, encryption_key=key)
        assert result.ok, result.differences
        assert result.tables_compared > 0
    assert list(elsewhere.iterdir()) == []  # the private copy is gone
    assert fetch_dump(store, elsewhere, entry.id) == entry.id
    assert [e.id for e in list_backups(elsewhere)] == [entry.id]
    with pytest.raises(OffsiteRefused, match="already in"):
        fetch_dump(store, elsewhere, entry.id)
    with pytest.raises(OffsiteMissing, match="no dump 'nope'"):
        fetch_dump(store, elsewhere, "nope")


def test_a_dump_whose_manifest_never_arrived_is_not_listed(seeded_url, offsite_env, tmp_path):
    entry = create_backup(seeded_url, tmp_path / "backups")
    store = store_of(offsite_env)
    store.upload(entry.dump_path, keys.dump(entry.id, entry.dump_path.name))  # an upload cut before its manifest
    found = catalogue.read(store)
    assert found.dumps == [] and found.incomplete == [f"dumps/{entry.id}"]
    with pytest.raises(OffsiteMissing):
        fetch_dump(store, tmp_path / "elsewhere", "latest")
    assert not (tmp_path / "elsewhere").exists() or not any((tmp_path / "elsewhere").iterdir())
    verification = catalogue.verify(store, backup_dir=tmp_path / "backups", recovery_root=None)
    assert not verification.ok and "without a manifest" in verification.problems[0]


def test_the_recovery_chain_restores_from_the_bucket_alone(recovery_chain, offsite_env, tmp_path):
    chain = recovery_chain
    store = store_of(offsite_env)
    report = push(store, backup_dir=None, recovery_root=chain.layout.root, encrypted_wal_only=True)
    assert {chain.full.id, chain.incremental.id} <= set(report.base_backups)
    assert report.wal_files > 0 and all(name.endswith(".enc") or name.endswith(".history")
                                        for name in catalogue.read(store).wal_files)
    assert not any(t.key.endswith(".partial") for t in report.uploaded)
    uploaded = [t.key for t in report.uploaded]
    for backup_id in (chain.full.id, chain.incremental.id):  # each base backup's manifest after its files
        files = [i for i, k in enumerate(uploaded) if k.startswith(f"base/{backup_id}/")]
        assert uploaded[files[-1]] == keys.base(backup_id, keys.MANIFEST)
    # the WAL's digests are kept beside it: the next push compares them with the objects' without reading
    cached = json.loads((chain.layout.wal / DIGEST_CACHE).read_text())
    assert {k.removeprefix("wal/") for k in uploaded if k.startswith("wal/")} <= set(cached)
    assert not push(store, backup_dir=None, recovery_root=chain.layout.root, encrypted_wal_only=True).uploaded
    assert catalogue.verify(store, backup_dir=None, recovery_root=chain.layout.root).ok

    into = chain.root / "from-offsite"
    # nothing local: the restore sees only what it fetched (beside the chain: the server's OS user reads there)
    nowhere = chain.root / f"no-recovery-dir-{uuid.uuid4().hex[:8]}"
    with chain_workdir(store, nowhere) as layout:
        result = restore(layout, parse_target(name="rp-10"), into, key_for=chain.key_for, scratch=True)
    try:
        assert chain.rows(into, result.port) == list(range(1, 11))
    finally:
        stop_restored(into)
    assert [p for p in nowhere.iterdir()] == []  # the fetched chain is removed
