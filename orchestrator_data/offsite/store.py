"""The S3 client: verified uploads and downloads, listing, and S3's errors turned into one line that
names what is wrong (the bucket, the credentials, the endpoint) and never a credential.

Every upload carries the file's SHA-256 checksum (`x-amz-checksum-sha256`; per part for a multipart
upload), so the store itself refuses bytes that differ from the file's; the request is signed (SigV4),
so a store that checks signatures refuses a changed request too. After the upload the object is read
back (HEAD) and its size, checksum (or ETag) and recorded sha256 compared with the local file's.
An object appears whole or not at all: a single PUT is atomic, and a multipart upload is invisible until
completed (it is aborted on any failure)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from orchestrator_data.offsite import checksums
from orchestrator_data.offsite.checksums import Digests
from orchestrator_data.offsite.config import StoreConfig
from orchestrator_data.offsite.errors import OffsiteCorrupt, OffsiteError, OffsiteMissing, OffsiteRefused
from orchestrator_data.redaction import redact, register_secret

log = logging.getLogger(__name__)
SHA256_META = "sha256"
PART_SIZE_META = "part-size"
_READ = 1 << 20
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthorizationHeaderMalformed",
                     "InvalidToken", "ExpiredToken", "InvalidSecurity", "AccessKeyDisabled"}
_CORRUPT_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch",
                  "InvalidChecksum"}


@dataclass(frozen=True)
class RemoteObject:
    key: str                 # relative to the prefix
    size: int
    last_modified: datetime
    etag: str


@dataclass(frozen=True)
class Transfer:
    key: str                 # relative to the prefix
    size: int
    sha256: str
    done: bool               # False: skipped (already there with the same checksum)
    multipart: bool = False


class ObjectStore:
    """One bucket and prefix of an S3-compatible store. Keys given to it are relative to the prefix."""

    def __init__(self, config: StoreConfig):
        self.config = config
        if config.secret_access_key is not None:
            register_secret(config.secret_access_key.get_secret_value())
        self._client = _client(config)

    # -- what the store holds ----------------------------------------------------------------------
    def check_bucket(self) -> None:
        """Fail fast, naming the problem: an unknown bucket, refused credentials, an unreachable endpoint."""
        # a GET, not HEAD: its error body names the cause (NoSuchBucket, InvalidAccessKeyId, ...)
        with self._translated("open the bucket", None):
            self._client.list_objects_v2(Bucket=self.config.bucket, Prefix=self.config.prefix, MaxKeys=1)

    def head(self, key: str) -> dict | None:
        """The object's HEAD (with its checksum), or None when there is none."""
        try:
            with self._translated("read", key):
                return self._client.head_object(Bucket=self.config.bucket, Key=self.config.key(key),
                                                ChecksumMode="ENABLED")
        except _Missing:
            return None

    def list(self, under: str = "") -> list[RemoteObject]:
        found = []
        with self._translated("list", under or "/"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.config.bucket, Prefix=self.config.key(under))
            for page in pages:
                for item in page.get("Contents", []):
                    found.append(RemoteObject(item["Key"][len(self.config.prefix):], int(item["Size"]),
                                              item["LastModified"], item.get("ETag", "").strip('"')))
        return found

    # -- copying up --------------------------------------------------------------------------------
    def upload(self, path: Path, key: str, *, sha256: str | None = None) -> Transfer:
        """Copy `path` to `key`, verified; skipped when the object is already there with the same size and
        checksum. `sha256`: the file's, when a manifest already holds it (then an object recorded with that
        sha256 is skipped without reading the file; a file that does not hash to it is refused)."""
        existing = self.head(key)
        size = path.stat().st_size
        if existing is not None and int(existing.get("ContentLength", -1)) == size:
            recorded = existing.get("Metadata", {}).get(SHA256_META)
            if sha256 is not None:
                # known from a manifest (or the WAL's digest cache): the object was verified against that
                # sha256 when it went up; comparing it spares a read of every unchanged file at every push
                if recorded == sha256:
                    return Transfer(key, size, sha256, done=False)
            else:
                # the same bytes uploaded the same way (the part size it was uploaded with) give the same checksum
                digests = checksums.of_file(path, _part_size_of(existing, size))
                if not _problems(existing, digests):
                    return Transfer(key, size, digests.sha256, done=False, multipart=bool(digests.part_size))
        digests = checksums.of_file(path, self.config.part_size)
        if sha256 is not None and digests.sha256 != sha256:
            raise OffsiteCorrupt(f"{path} does not match its manifest (sha256 {digests.sha256}, manifest "
                                 f"{sha256}): not copied")
        metadata = {SHA256_META: digests.sha256, PART_SIZE_META: str(digests.part_size)}
        if digests.part_size:
            self._upload_parts(path, key, digests, metadata)
        else:
            with self._translated("upload", key), open(path, "rb") as body:
                self._client.put_object(Bucket=self.config.bucket, Key=self.config.key(key), Body=body,
                                        ContentLength=digests.size, ChecksumSHA256=digests.checksum_sha256,
                                        Metadata=metadata)
        stored = self.head(key)
        problems = ["the object is missing after its upload"] if stored is None else _problems(stored, digests)
        if problems:
            raise OffsiteCorrupt(f"{key} in {self.config.where} does not match {path.name} after upload: "
                                 + "; ".join(problems))
        log.info("copied %s to %s (%d bytes)", path.name, key, digests.size)
        return Transfer(key, digests.size, digests.sha256, done=True, multipart=bool(digests.part_size))

    def _upload_parts(self, path: Path, key: str, digests: Digests, metadata: dict) -> None:
        bucket, full_key = self.config.bucket, self.config.key(key)
        with self._translated("upload", key):
            upload_id = self._client.create_multipart_upload(Bucket=bucket, Key=full_key, Metadata=metadata,
                                                             ChecksumAlgorithm="SHA256")["UploadId"]
        try:
            parts = []
            with open(path, "rb") as f:
                for number, expected in enumerate(digests.part_sha256, start=1):
                    data = f.read(digests.part_size)
                    if hashlib.sha256(data).digest() != expected:
                        raise OffsiteCorrupt(f"{path} changed while it was being copied: not copied")
                    checksum = checksums.b64(expected)
                    with self._translated("upload", key):
                        answer = self._client.upload_part(Bucket=bucket, Key=full_key, UploadId=upload_id,
                                                          PartNumber=number, Body=data, ChecksumSHA256=checksum)
                    parts.append({"ETag": answer["ETag"], "PartNumber": number, "ChecksumSHA256": checksum})
            with self._translated("upload", key):
                self._client.complete_multipart_upload(Bucket=bucket, Key=full_key, UploadId=upload_id,
                                                       MultipartUpload={"Parts": parts})
        except BaseException:
            # nothing half-written: an unfinished upload's parts are never an object; free them
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=bucket, Key=full_key, UploadId=upload_id)
            raise

    def put_bytes(self, key: str, data: bytes) -> None:
        """A small object (a marker), verified by its checksum on the way in."""
        digest = hashlib.sha256(data)
        with self._translated("upload", key):
            self._client.put_object(Bucket=self.config.bucket, Key=self.config.key(key), Body=data,
                                    ChecksumSHA256=checksums.b64(digest.digest()),
                                    Metadata={SHA256_META: digest.hexdigest(), PART_SIZE_META: "0"})

    # -- copying down ------------------------------------------------------------------------------
    def download(self, key: str, destination: Path) -> Transfer:
        """Copy `key` to `destination` through a temporary name, renamed only once its sha256 and size
        match what was recorded at upload (OffsiteCorrupt otherwise, nothing left behind)."""
        temporary = destination.with_name(f".{destination.name}.download")
        try:
            with open(temporary, "wb") as out:
                sha256, size, expected = self._read(key, out)
                out.flush()
                os.fsync(out.fileno())
            if (sha256, size) != expected:
                raise OffsiteCorrupt(f"{key} in {self.config.where} does not hold what was uploaded: sha256 "
                                     f"{sha256} ({size} bytes), recorded {expected[0]} ({expected[1]} bytes)")
            os.replace(temporary, destination)
        finally:
            temporary.unlink(missing_ok=True)
        return Transfer(key, size, sha256, done=True)

    def read_back(self, key: str) -> tuple[str, int, tuple[str, int]]:
        """Read the object whole without keeping it: (sha256, size, (recorded sha256, recorded size))."""
        return self._read(key, None)

    def _read(self, key: str, out) -> tuple[str, int, tuple[str, int]]:
        digest, size = hashlib.sha256(), 0
        try:
            with self._translated("download", key):
                answer = self._client.get_object(Bucket=self.config.bucket, Key=self.config.key(key),
                                                 ChecksumMode="ENABLED")
                recorded = (answer.get("Metadata", {}).get(SHA256_META), int(answer["ContentLength"]))
                for data in answer["Body"].iter_chunks(_READ):
                    digest.update(data)
                    size += len(data)
                    if out is not None:
                        out.write(data)
        except _Missing:
            raise OffsiteMissing(f"no object {key} in {self.config.where}") from None
        return digest.hexdigest(), size, recorded

    def delete(self, key: str) -> None:
        with self._translated("delete", key):
            self._client.delete_object(Bucket=self.config.bucket, Key=self.config.key(key))

    # -- errors ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _translated(self, action: str, key: str | None):
        from botocore.exceptions import (BotoCoreError, ClientError, ConnectionError as BotoConnectionError,
                                         NoCredentialsError, PartialCredentialsError)

        config = self.config
        what = f"{key} in {config.where}" if key else config.where
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in ("NoSuchBucket",) or (code == "404" and key is None):
                raise OffsiteRefused(f"bucket {config.bucket!r} does not exist"
                                     + (f" at {config.endpoint_url}" if config.endpoint_url else "")
                                     + ": create it, or correct OFFSITE_BUCKET") from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise _Missing() from None
            if code in _CREDENTIAL_CODES:
                raise OffsiteRefused(f"{config.where} refused the credentials ({code}): check OFFSITE_ACCESS_KEY_ID "
                                     "and OFFSITE_SECRET_ACCESS_KEY") from None
            if code in ("AccessDenied", "403", "AllAccessDisabled"):
                raise OffsiteRefused(f"access denied to {what} ({action}): the credentials lack the permission"
                                     ) from None
            if code in _CORRUPT_CODES:
                raise OffsiteCorrupt(f"{config.where} refused the bytes of {key} ({code}): they do not match their "
                                     "checksum; nothing was stored") from None
            message = redact(" ".join(str(error.get("Message") or "").split()))[:300]
            raise OffsiteError(f"{action} {what} failed: {code}" + (f" ({message})" if message else "")) from None
        except (NoCredentialsError, PartialCredentialsError):
            raise OffsiteRefused("no credentials for the object store: set OFFSITE_ACCESS_KEY_ID and "
                                 "OFFSITE_SECRET_ACCESS_KEY") from None
        except BotoConnectionError as exc:
            raise OffsiteError(f"not reachable at {config.endpoint_url or 'AWS S3'} "
                               f"({type(exc).__name__}) to {action} {key or config.bucket}") from None
        except BotoCoreError as exc:
            raise OffsiteError(f"{action} {what} failed: {type(exc).__name__}: {redact(str(exc))[:300]}") from None


class _Missing(OffsiteMissing):
    """The object does not exist (a 404 on a key); caught inside this module."""


def _client(config: StoreConfig):
    import boto3
    from botocore.config import Config

    secret = config.secret_access_key.get_secret_value() if config.secret_access_key is not None else None
    session = boto3.session.Session(aws_access_key_id=config.access_key_id, aws_secret_access_key=secret,
                                    region_name=config.region)
    return session.client("s3", endpoint_url=config.endpoint_url, config=Config(
        signature_version="s3v4",
        # an endpoint of our own (MinIO, a gateway) serves buckets by path, not by DNS name
        s3={"addressing_style": "path" if config.endpoint_url else "auto"},
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60,
        # the checksums are ours (SHA-256, sent with every upload): no second CRC of botocore's
        request_checksum_calculation="when_required", response_checksum_validation="when_required"))


def _part_size_of(head: dict, size: int) -> int:
    """The part size an object was uploaded with (`size` itself, i.e. one part, for a single PUT)."""
    try:
        return int(head.get("Metadata", {}).get(PART_SIZE_META)) or max(size, 1)
    except (TypeError, ValueError):
        return max(size, 1)


def _problems(head: dict, digests: Digests) -> list[str]:
    """How an object's HEAD differs from the local file's digests (empty: the same bytes)."""
    problems = []
    size = int(head.get("ContentLength", -1))
    if size != digests.size:
        problems.append(f"size {size} bytes, the file has {digests.size}")
    recorded = head.get("Metadata", {}).get(SHA256_META)
    if recorded != digests.sha256:
        problems.append(f"recorded sha256 {recorded}, the file's is {digests.sha256}")
    checksum = head.get("ChecksumSHA256")
    if checksum:
        # a store may report a composite checksum without its "-<parts>" suffix
        if checksum.split("-")[0] != digests.checksum_sha256.split("-")[0]:
            problems.append(f"the store's SHA-256 checksum {checksum} is not the file's {digests.checksum_sha256}")
    elif head.get("ETag", "").strip('"') != digests.etag:
        problems.append(f"ETag {head.get('ETag', '').strip(chr(34))} is not the file's {digests.etag}")
    return problems
