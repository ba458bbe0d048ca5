"""The session's S3-compatible server (MinIO, tests/conftest.py `s3_server`) and buckets of a test's own on
it: `offsite_env` gives a new bucket's OFFSITE_* variables, `store_of(env)` the core's ObjectStore on it."""

from __future__ import annotations

import secrets
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from orchestrator_data.offsite.config import MIB, StoreConfig, normalized_prefix
from orchestrator_data.offsite.store import ObjectStore
from orchestrator_data.stack.object_store import MinioServer

ACCESS_KEY = "offsite-tests"


@contextmanager
def started_server(root: Path):
    server = MinioServer(root / "data", access_key=ACCESS_KEY, secret_key=secrets.token_hex(16))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def new_bucket_env(server: MinioServer, *, part_size_mb: int = 5) -> dict[str, str]:
    bucket = f"t-{secrets.token_hex(6)}"
    env = {"OFFSITE_ENDPOINT_URL": server.endpoint, "OFFSITE_BUCKET": bucket, "OFFSITE_PREFIX": "od-tests",
           "OFFSITE_ACCESS_KEY_ID": server.access_key, "OFFSITE_SECRET_ACCESS_KEY": server.secret_key,
           "OFFSITE_PART_SIZE_MB": str(part_size_mb)}
    store_of(env)._client.create_bucket(Bucket=bucket)
    return env


def config_of(env: dict[str, str]) -> StoreConfig:
    return StoreConfig(bucket=env["OFFSITE_BUCKET"], prefix=normalized_prefix(env.get("OFFSITE_PREFIX")),
                       endpoint_url=env["OFFSITE_ENDPOINT_URL"], access_key_id=env["OFFSITE_ACCESS_KEY_ID"],
                       secret_access_key=SecretStr(env["OFFSITE_SECRET_ACCESS_KEY"]),
                       part_size=int(env.get("OFFSITE_PART_SIZE_MB", "5")) * MIB)


def store_of(env: dict[str, str]) -> ObjectStore:
    return ObjectStore(config_of(env))
