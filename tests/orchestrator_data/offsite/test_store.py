"""The S3 client against a real S3-compatible server (MinIO): verified uploads, single and multipart,
skipped re-uploads, verified downloads, what the server itself refuses, and one-line errors that name
the problem and never the secret."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from orchestrator_data.errors import BadInput, exit_code
from orchestrator_data.offsite import checksums
from orchestrator_data.offsite.errors import OffsiteCorrupt, OffsiteError, OffsiteMissing, OffsiteRefused
from orchestrator_data.offsite.store import ObjectStore
from orchestrator_data.stack.common import free_port
from tests.offsite_store import config_of, store_of

MIB = 1 << 20


@pytest.fixture
def store(offsite_env) -> ObjectStore:
    return store_of(offsite_env)


def _file(tmp_path, name: str, size: int):
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def test_a_small_file_goes_up_verified_and_a_second_push_is_skipped(store, tmp_path):
    path = _file(tmp_path, "dump.pgc", 100_000)
    first = store.upload(path, "dumps/x/dump.pgc")
    assert first.done and not first.multipart
    assert first.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    head = store.head("dumps/x/dump.pgc")
    assert head["ChecksumSHA256"] == checksums.of_file(path, 5 * MIB).checksum_sha256  # the server's own
    again = store.upload(path, "dumps/x/dump.pgc")
    assert not again.done  # same checksum: skipped
    [listed] = store.list("dumps/")
    assert (listed.key, listed.size) == ("dumps/x/dump.pgc", 100_000)


def test_a_large_file_goes_up_in_parts_with_the_servers_composite_checksum(store, tmp_path):
    path = _file(tmp_path, "base.tar", 11 * MIB + 5)  # 5 MiB parts: 3
    digests = checksums.of_file(path, 5 * MIB)
    assert digests.parts == 3
    sent = store.upload(path, "base/b/base.tar")
    assert sent.done and sent.multipart
    assert store.head("base/b/base.tar")["ChecksumSHA256"].split("-")[0] == digests.checksum_sha256.split("-")[0]
    assert not store.upload(path, "base/b/base.tar").done
    back = tmp_path / "back.tar"
    got = store.download("base/b/base.tar", back)
    assert got.sha256 == digests.sha256 and back.read_bytes() == path.read_bytes()


def test_a_changed_file_is_uploaded_again(store, tmp_path):
    path = _file(tmp_path, "restore_points.jsonl", 1000)
    store.upload(path, "restore_points.jsonl")
    path.write_bytes(os.urandom(1000))  # same size, other bytes
    assert store.upload(path, "restore_points.jsonl").done
    assert store.read_back("restore_points.jsonl")[0] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_server_refuses_bytes_that_do_not_match_their_checksum(store, tmp_path):
    wrong = checksums.b64(hashlib.sha256(b"other bytes").digest())
    with pytest.raises(ClientError) as refused:
        store._client.put_object(Bucket=store.config.bucket, Key=store.config.key("x"), Body=b"these bytes",
                                 ChecksumSHA256=wrong)
    assert refused.value.response["Error"]["Code"] in {"BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest"}
    assert store.head("x") is None


def test_a_file_that_changes_during_a_multipart_upload_leaves_nothing(store, tmp_path):
    path = _file(tmp_path, "base.tar", 6 * MIB)
    digests = checksums.of_file(path, 5 * MIB)
    with open(path, "r+b") as f:  # the second part changes after its checksum was taken
        f.seek(5 * MIB + 10)
        f.write(b"changed")
    with pytest.raises(OffsiteCorrupt, match="changed while"):
        store._upload_parts(path, "base/c/base.tar", digests, {"sha256": digests.sha256, "part-size": str(5 * MIB)})
    assert store.head("base/c/base.tar") is None
    uploads = store._client.list_multipart_uploads(Bucket=store.config.bucket).get("Uploads", [])
    assert uploads == []  # aborted, not left to linger


def test_a_download_that_does_not_match_what_was_uploaded_is_refused_and_leaves_no_file(store, tmp_path):
    path = _file(tmp_path, "dump.pgc", 5000)
    store.upload(path, "dumps/y/dump.pgc")
    # someone replaces the object's bytes and keeps the recorded sha256
    original = store.head("dumps/y/dump.pgc")["Metadata"]
    store._client.put_object(Bucket=store.config.bucket, Key=store.config.key("dumps/y/dump.pgc"),
                             Body=os.urandom(5000), Metadata=original)
    target = tmp_path / "fetched.pgc"
    with pytest.raises(OffsiteCorrupt, match="does not hold what was uploaded"):
        store.download("dumps/y/dump.pgc", target)
    assert not target.exists() and not list(tmp_path.glob(".*download"))
    with pytest.raises(OffsiteMissing):
        store.download("dumps/none/dump.pgc", target)


def test_a_wrong_secret_is_refused_by_the_signature_check_and_never_printed(offsite_env):
    secret = "not-the-secret-" + os.urandom(6).hex()
    config = replace(config_of(offsite_env), secret_access_key=SecretStr(secret))
    with pytest.raises(OffsiteRefused) as refused:
        ObjectStore(config).check_bucket()
    message = refused.value.one_line()
    assert "OFFSITE_SECRET_ACCESS_KEY" in message and "SignatureDoesNotMatch" in message
    assert secret not in message and offsite_env["OFFSITE_SECRET_ACCESS_KEY"] not in message
    assert exit_code(refused.value) == 2


def test_an_unknown_bucket_and_an_unreachable_endpoint_are_named(offsite_env):
    config = config_of(offsite_env)
    with pytest.raises(OffsiteRefused, match="bucket 'no-such-bucket-here' does not exist"):
        ObjectStore(replace(config, bucket="no-such-bucket-here")).check_bucket()
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(OffsiteError, match=f"not reachable at {dead}") as unreachable:
        ObjectStore(replace(config, endpoint_url=dead)).check_bucket()
    assert not isinstance(unreachable.value, BadInput)  # exit 1: the request was fine, the store was not there
