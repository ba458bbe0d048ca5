"""Authenticated encryption of backup files: AES-256-GCM in independent chunks (streaming, constant memory).

File layout:
    header  = b"ODBKENC1" | chunk_size (u32 BE) | file_id (16 random bytes)
    record* = final flag (1 byte) | nonce (12 random bytes) | ciphertext length (u32 BE) | ciphertext+tag

Each chunk's associated data is header | chunk index (u64 BE) | final flag, so a chunk moved to another
position or another file, a dropped final chunk (truncation) or data appended after it all fail to
authenticate. Random 96-bit nonces are safe far beyond the number of chunks one key will ever see
(1 MiB chunks: 2^32 chunks is 4 PiB). The key never leaves this process; manifests carry only key_id."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator_data.backups.catalog import BackupCorrupt, BackupKeyError

ALGORITHM = "AES-256-GCM-chunked-v1"
MAGIC = b"ODBKENC1"
CHUNK_SIZE = 1 << 20
_HEADER = struct.Struct(">8sI16s")
_RECORD = struct.Struct(">B12sI")


def decode_key(text: str | bytes) -> bytes:
    """BACKUP_ENCRYPTION_KEY: base64 of exactly 32 bytes. The message never repeats the value."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BackupKeyError("the encryption key is not valid base64 (expected base64 of 32 random bytes)") from None
    if len(raw) != 32:
        raise BackupKeyError(f"the encryption key decodes to {len(raw)} bytes; expected 32")
    return raw


def key_id(key: bytes) -> str:
    """A short, non-reversible name of the key, so a wrong key is named before any decryption."""
    return hashlib.sha256(b"orchestrator-data backup key id\0" + key).hexdigest()[:16]


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, 1 if final else 0)


def encrypt_stream(fin: BinaryIO, fout: BinaryIO, key: bytes, *,
                   on_bytes: Callable[[bytes], None] | None = None) -> int:
    """Encrypt everything read from fin into fout (fin may be a pipe). on_bytes sees every byte written,
    so the stored file is hashed in the same pass. Returns the plaintext length."""
    aead = AESGCM(key)
    header = _HEADER.pack(MAGIC, CHUNK_SIZE, os.urandom(16))

    def write(data: bytes) -> None:
        fout.write(data)
        if on_bytes:
            on_bytes(data)

    write(header)
    index = total = 0
    chunk = _read_full(fin, CHUNK_SIZE)
    while True:
        following = _read_full(fin, CHUNK_SIZE)  # read ahead: the last chunk (possibly empty) is flagged final
        final = not following
        nonce = os.urandom(12)
        ciphertext = aead.encrypt(nonce, chunk, _aad(header, index, final))
        write(_RECORD.pack(1 if final else 0, nonce, len(ciphertext)) + ciphertext)
        total += len(chunk)
        if final:
            return total
        chunk, index = following, index + 1


def _read_full(fin: BinaryIO, size: int) -> bytes:
    """A pipe returns short reads; gather a whole chunk (or what is left at EOF)."""
    parts, remaining = [], size
    while remaining:
        data = fin.read(remaining)
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return b"".join(parts)


def decrypt_file(src: Path, dst: Path | None, key: bytes) -> int:
    """Authenticate every chunk of src (and write the plaintext to dst if given). Returns plaintext bytes.
    Raises BackupCorrupt on any tampering, truncation or trailing data."""
    fout = open(dst, "wb") if dst is not None else None
    try:
        with open(src, "rb") as fin:
            return decrypt_stream(fin, fout, key)
    finally:
        if fout:
            fout.close()


def decrypt_stream(fin: BinaryIO, fout: BinaryIO | None, key: bytes) -> int:
    """decrypt_file on open streams: fin is read once, front to back (a caller may hash what it reads),
    each authenticated chunk written to fout as soon as it is known good."""
    aead = AESGCM(key)
    total = 0
    header = fin.read(_HEADER.size)
    if len(header) != _HEADER.size or _HEADER.unpack(header)[0] != MAGIC:
        raise BackupCorrupt("not an orchestrator-data encrypted backup (bad header)")
    chunk_size = _HEADER.unpack(header)[1]
    index = 0
    while True:
        record = fin.read(_RECORD.size)
        if len(record) < _RECORD.size:
            raise BackupCorrupt(f"encrypted backup is truncated (no final chunk after chunk {index})")
        flag, nonce, length = _RECORD.unpack(record)
        if flag not in (0, 1) or length > chunk_size + 16:
            raise BackupCorrupt(f"encrypted backup chunk {index} has a malformed record header")
        ciphertext = fin.read(length)
        if len(ciphertext) != length:
            raise BackupCorrupt(f"encrypted backup is truncated inside chunk {index}")
        try:
            plaintext = aead.decrypt(nonce, ciphertext, _aad(header, index, flag == 1))
        except InvalidTag:
            raise BackupCorrupt(f"encrypted backup chunk {index} fails authentication "
                                "(tampered, reordered or corrupted)") from None
        total += len(plaintext)
        if fout:
            fout.write(plaintext)
        if flag == 1:
            if fin.read(1):
                raise BackupCorrupt("encrypted backup has data after its final chunk")
            return total
        index += 1
