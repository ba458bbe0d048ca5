"""Unpacking a stored tar in one pass (no server): the stored file's sha256 from the same reads, padding
after the archive's end that tar never reads, and a cancelled unpack."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading

import pytest

from orchestrator_data.backups.crypto import encrypt_stream
from orchestrator_data.recovery.tarstream import Cancelled, extract


def _tar(padding: int = 0) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, size in (("base/1/16384", 3 << 20), ("PG_VERSION", 3)):
            data = os.urandom(size)
            info = tarfile.TarInfo(name)
            info.size = size
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue() + b"\0" * padding


@pytest.mark.parametrize("encrypted", [False, True])
def test_the_stored_file_is_hashed_in_the_pass_that_unpacks_it_padding_included(tmp_path, encrypted):
    key = os.urandom(32) if encrypted else None
    stored = tmp_path / "base.tar"
    plain = _tar(padding=4 << 20)   # tar stops at the end marker, long before the padding was sent
    if key:
        with open(stored, "wb") as out:
            encrypt_stream(io.BytesIO(plain), out, key)
    else:
        stored.write_bytes(plain)
    size, sha256, _ = extract(stored, key, tmp_path / "out")
    assert (size, sha256) == (stored.stat().st_size, hashlib.sha256(stored.read_bytes()).hexdigest())
    assert (tmp_path / "out" / "base" / "1" / "16384").stat().st_size == 3 << 20


def test_a_cancelled_unpack_stops_with_cancelled(tmp_path):
    stored = tmp_path / "base.tar"
    stored.write_bytes(_tar())
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(Cancelled):
        extract(stored, None, tmp_path / "out", cancelled)
