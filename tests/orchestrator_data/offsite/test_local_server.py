"""`python -m orchestrator_data.offsite.local_server`: the local stack's store, from the OFFSITE_*
settings — MinIO on the endpoint's port with those credentials, the bucket created, stopped by SIGTERM."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import pytest

from orchestrator_data.stack.common import free_port
from tests.offsite_store import store_of

pytestmark = pytest.mark.integration


def test_serve_starts_minio_with_the_settings_and_creates_the_bucket(session_dir):
    env = {"OFFSITE_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "OFFSITE_BUCKET": "local-copies",
           "OFFSITE_ACCESS_KEY_ID": "local-admin", "OFFSITE_SECRET_ACCESS_KEY": secrets.token_hex(12)}
    data = session_dir / f"serve-{secrets.token_hex(3)}"
    process = subprocess.Popen([sys.executable, "-m", "orchestrator_data.offsite.local_server", str(data)],
                               env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith(f"MinIO at {env['OFFSITE_ENDPOINT_URL']}, bucket local-copies"), line
        assert env["OFFSITE_SECRET_ACCESS_KEY"] not in line
        store = store_of(env)
        store.check_bucket()  # the bucket exists, the settings' credentials are the server's
        assert store.list() == []
    finally:
        process.terminate()
        assert process.wait(30) == 0
    deadline = time.monotonic() + 10
    while store.config.endpoint_url and time.monotonic() < deadline:
        try:
            store.check_bucket()
        except Exception:  # noqa: BLE001 - gone, as it should be
            break
        time.sleep(0.2)
    else:
        pytest.fail("MinIO still answers after serve stopped")
