"""A local file's digests as S3 states them, computed in one read: the plain sha256 (kept in the object's
metadata, compared on download), the store's own SHA-256 checksum (of the whole object for a single PUT;
for a multipart upload the "composite" form, sha256 of the parts' sha256 digests with `-<parts>`), and
the ETag (md5, or md5 of the parts' md5 digests with `-<parts>`) for stores that report no checksum."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

_READ = 1 << 20


@dataclass(frozen=True)
class Digests:
    size: int
    sha256: str                  # hex of the whole file
    part_size: int               # 0: a single PUT
    part_sha256: tuple[bytes, ...]
    checksum_sha256: str         # what the store reports as ChecksumSHA256
    etag: str                    # what the store reports as ETag (unquoted), when it uses md5

    @property
    def parts(self) -> int:
        return len(self.part_sha256) if self.part_size else 1


def multipart(size: int, part_size: int) -> bool:
    return size > part_size


def of_file(path: Path, part_size: int) -> Digests:
    """The digests of `path` as uploaded with `part_size` (a single PUT when the file is no larger)."""
    size = path.stat().st_size
    split = multipart(size, part_size)
    whole, whole_md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    part_sha: list[bytes] = []
    part_md5: list[bytes] = []
    with open(path, "rb") as f:
        while True:
            part, part_m, read = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
            limit = part_size if split else size
            while read < limit and (data := f.read(min(_READ, limit - read))):
                whole.update(data)
                whole_md5.update(data)
                part.update(data)
                part_m.update(data)
                read += len(data)
            if split and read:
                part_sha.append(part.digest())
                part_md5.append(part_m.digest())
            if not split or read < part_size:
                break
    if split:
        checksum = f"{b64(hashlib.sha256(b''.join(part_sha)).digest())}-{len(part_sha)}"
        etag = f"{hashlib.md5(b''.join(part_md5), usedforsecurity=False).hexdigest()}-{len(part_md5)}"
        return Digests(size, whole.hexdigest(), part_size, tuple(part_sha), checksum, etag)
    return Digests(size, whole.hexdigest(), 0, (), b64(whole.digest()), whole_md5.hexdigest())


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")
