"""`orchestrator-data backup offsite ...`, the automatic push of `backup create`, and the restores that take
their source from the bucket, against the session's S3 server (MinIO): what a user runs, and every refusal
as one line naming what is wrong, never the secret."""

from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest

from orchestrator_data.stack.common import free_port
from tests.offsite_store import store_of
from tests.recovery_chain import stop_restored

pytestmark = pytest.mark.integration


def _one_line(result, code: int, *needles: str) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def env(migrated_url, offsite_env, tmp_path):
    return {**offsite_env, "DATABASE_URL": migrated_url, "BACKUP_DIR": str(tmp_path / "backups"),
            "RECOVERY_DIR": str(tmp_path / "recovery")}


def test_backup_create_pushes_and_the_dump_restores_from_the_bucket_alone(cli, env, tmp_path):
    created = cli("backup", "create", env=env)
    assert created.returncode == 0, created.stderr
    assert "off the machine in s3://" in created.stdout and "2 file(s) copied" in created.stdout
    listed = json.loads(cli("backup", "offsite", "list", "--json", env=env).stdout)
    [dump_id] = listed["dumps"]
    assert listed["objects"] == 2 and listed["newest_copy_age_s"] < 600
    pushed = cli("backup", "offsite", "push", "--json", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["uploaded"] == 0  # already there, same checksum
    verified = cli("backup", "offsite", "verify", env=env)
    assert verified.returncode == 0 and "2 object(s) verified" in verified.stdout, verified.stderr

    shutil.rmtree(tmp_path / "backups")
    checked = cli("backup", "restore-check", "latest", "--from-offsite", env=env)
    assert checked.returncode == 0, checked.stderr
    assert f"backup {dump_id} restored and matches its manifest" in checked.stdout
    assert not any((tmp_path / "backups").iterdir())  # the private copy is gone
    fetched = cli("backup", "offsite", "fetch", dump_id, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert [b["id"] for b in json.loads(cli("backup", "list", "--json", env=env).stdout)["backups"]] == [dump_id]
    assert env["OFFSITE_SECRET_ACCESS_KEY"] not in created.stdout + created.stderr + checked.stdout + fetched.stdout


def test_verify_names_an_object_changed_in_the_bucket(cli, env):
    assert cli("backup", "create", env=env).returncode == 0
    store = store_of(env)
    [dump_key] = [o.key for o in store.list("dumps/") if not o.key.endswith("manifest.json")]
    head = store.head(dump_key)
    store._client.put_object(Bucket=store.config.bucket, Key=store.config.key(dump_key),
                             Body=os.urandom(int(head["ContentLength"])), Metadata=head["Metadata"])
    result = cli("backup", "offsite", "verify", env=env)
    assert result.returncode == 1
    assert dump_key in result.stderr and "Traceback" not in result.stderr
    assert cli("backup", "offsite", "verify", "--download", env=env).returncode == 1


def test_refusals_name_what_is_wrong_and_never_the_secret(cli, env):
    secret = env["OFFSITE_SECRET_ACCESS_KEY"]
    unset = {**env, "OFFSITE_BUCKET": ""}
    _one_line(cli("backup", "offsite", "push", env=unset), 2, "OFFSITE_BUCKET")
    wrong = cli("backup", "offsite", "list", env={**env, "OFFSITE_SECRET_ACCESS_KEY": secret[::-1]})
    line = _one_line(wrong, 2, "refused the credentials", "OFFSITE_SECRET_ACCESS_KEY")
    assert secret not in line and secret[::-1] not in line
    _one_line(cli("backup", "offsite", "list", env={**env, "OFFSITE_BUCKET": "not-a-bucket-of-ours"}), 2,
              "bucket 'not-a-bucket-of-ours' does not exist")
    dead = f"http://127.0.0.1:{free_port()}"
    _one_line(cli("backup", "offsite", "list", env={**env, "OFFSITE_ENDPOINT_URL": dead}), 1,
              f"object store: not reachable at {dead}")
    with_password = env["OFFSITE_ENDPOINT_URL"].replace("://", f"://user:{secret}@")
    line = _one_line(cli("backup", "offsite", "list", env={**env, "OFFSITE_ENDPOINT_URL": with_password}), 2,
                     "OFFSITE_ENDPOINT_URL", "must not carry credentials")
    assert secret not in line
    # a backup that would be copied to a bucket that does not exist: refused before pg_dump, nothing written
    _one_line(cli("backup", "create", env={**env, "OFFSITE_BUCKET": "not-a-bucket-of-ours"}), 2, "does not exist")
    assert json.loads(cli("backup", "list", "--json", env=env).stdout)["backups"] == []


def test_recovery_restore_from_offsite(cli, recovery_chain, offsite_env, tmp_path):
    chain = recovery_chain
    env = {**chain.env, **offsite_env}
    pushed = cli("backup", "offsite", "push", "--json", env={**env, "BACKUP_DIR": str(tmp_path / "no-dumps")})
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["base_backups"]
    into = chain.root / "cli-from-offsite"
    # nothing local to restore from (beside the chain: the restored server's OS user reads there)
    away = {**env, "RECOVERY_DIR": str(chain.root / f"empty-recovery-dir-{uuid.uuid4().hex[:8]}")}
    refused = cli("recovery", "restore", "--latest", "--in-place", "--confirm", "--from-offsite", env=away)
    _one_line(refused, 2, "--from-offsite")
    result = cli("recovery", "restore", "--target-name", "rp-10", "--into", str(into), "--from-offsite",
                 "--json", env=away)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    try:
        assert chain.rows(into, report["port"]) == list(range(1, 11))
    finally:
        stop_restored(into)
