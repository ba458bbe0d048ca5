"""The chunked AES-GCM format: round trips and every kind of tampering (no server needed)."""

from __future__ import annotations

import io
import os
import struct

import pytest

from orchestrator_data.backups import crypto
from orchestrator_data.backups.catalog import BackupCorrupt, BackupKeyError


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(crypto, "CHUNK_SIZE", 64)


def encrypt(data: bytes, key: bytes) -> bytes:
    out = io.BytesIO()
    crypto.encrypt_stream(io.BytesIO(data), out, key)
    return out.getvalue()


def decrypt(blob: bytes, key: bytes, tmp_path) -> bytes:
    src, dst = tmp_path / "in.enc", tmp_path / "out"
    src.write_bytes(blob)
    crypto.decrypt_file(src, dst, key)
    return dst.read_bytes()


def records(blob: bytes) -> tuple[bytes, list[bytes]]:
    header, rest, parts = blob[:crypto._HEADER.size], blob[crypto._HEADER.size:], []
    while rest:
        length = struct.unpack(">I", rest[13:17])[0]
        parts.append(rest[:17 + length])
        rest = rest[17 + length:]
    return header, parts


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 64 * 5 + 7])
def test_round_trip(size, tmp_path):
    key, data = os.urandom(32), os.urandom(size)
    assert decrypt(encrypt(data, key), key, tmp_path) == data


def test_flipped_bit_fails(tmp_path):
    key = os.urandom(32)
    blob = bytearray(encrypt(os.urandom(300), key))
    blob[len(blob) // 2] ^= 1
    with pytest.raises(BackupCorrupt):
        decrypt(bytes(blob), key, tmp_path)


def test_truncation_reorder_and_trailing_data_fail(tmp_path):
    key = os.urandom(32)
    header, parts = records(encrypt(os.urandom(300), key))
    assert len(parts) == 5
    with pytest.raises(BackupCorrupt, match="truncated"):
        decrypt(header + b"".join(parts[:-1]), key, tmp_path)  # whole final chunk dropped
    with pytest.raises(BackupCorrupt):
        decrypt(header + parts[1] + parts[0] + b"".join(parts[2:]), key, tmp_path)
    with pytest.raises(BackupCorrupt, match="after its final chunk"):
        decrypt(header + b"".join(parts) + parts[-1], key, tmp_path)
    other_header, _ = records(encrypt(os.urandom(300), key))
    with pytest.raises(BackupCorrupt):  # chunks bound to their file
        decrypt(other_header + b"".join(parts), key, tmp_path)


def test_wrong_key_fails(tmp_path):
    blob = encrypt(b"secret rows", os.urandom(32))
    with pytest.raises(BackupCorrupt):
        decrypt(blob, os.urandom(32), tmp_path)


def test_decode_key_and_key_id():
    import base64

    key = os.urandom(32)
    assert crypto.decode_key(base64.b64encode(key).decode()) == key
    for bad in ("not base64!!", base64.b64encode(b"short").decode()):
        with pytest.raises(BackupKeyError) as info:
            crypto.decode_key(bad)
        assert bad not in str(info.value)
    assert len(crypto.key_id(key)) == 16 and crypto.key_id(key) != crypto.key_id(os.urandom(32))
    assert key.hex()[:16] not in crypto.key_id(key)
