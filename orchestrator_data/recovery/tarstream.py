"""Reading a tar stream as it passes: pg_basebackup writes its backup_manifest into the tar it sends
to stdout, and the stream goes straight into the encryption, so the manifest is picked out on the way."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from orchestrator_data.errors import OperationFailed

BLOCK = 512


class TarMemberCatcher:
    """Fed the bytes of a tar stream in order; keeps the content of the member named `wanted`."""

    def __init__(self, wanted: str):
        self.wanted = wanted
        self.content: bytes | None = None
        self._buffer = bytearray()
        self._remaining = 0      # bytes of the current member's data (and padding) still to pass
        self._keep: bytearray | None = None
        self._keep_size = 0
        self._done = False

    def feed(self, data: bytes) -> None:
        if self._done:
            return
        self._buffer += data
        while True:
            if self._remaining:
                take = min(self._remaining, len(self._buffer))
                if not take:
                    return
                if self._keep is not None:
                    self._keep += self._buffer[:take]
                del self._buffer[:take]
                self._remaining -= take
                if not self._remaining and self._keep is not None:
                    self.content = bytes(self._keep[: self._keep_size])
                    self._keep, self._done = None, True
                    return
                continue
            if len(self._buffer) < BLOCK:
                return
            header = bytes(self._buffer[:BLOCK])
            del self._buffer[:BLOCK]
            if header == b"\0" * BLOCK:
                continue
            name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
            prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace") if header[257:262] == b"ustar" else ""
            full = f"{prefix}/{name}" if prefix else name
            size_field = header[124:136].split(b"\0", 1)[0].strip() or b"0"
            size = int(size_field, 8)
            self._remaining = (size + BLOCK - 1) // BLOCK * BLOCK
            if full.lstrip("./") == self.wanted and header[156:157] in (b"0", b"\0"):
                self._keep, self._keep_size = bytearray(), size
                if size == 0:
                    self.content, self._keep, self._done = b"", None, True
                    return


class Tee:
    """A readable wrapper that shows every byte read to `observer`."""

    def __init__(self, source: BinaryIO, observer):
        self.source, self.observer = source, observer

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if data:
            self.observer(data)
        return data


@contextlib.contextmanager
def plaintext(path: Path, key: bytes | None) -> Iterator[BinaryIO]:
    """The plaintext of a stored file as a stream: decrypted (and authenticated) in a thread through a
    pipe, never written to disk. An authentication failure is raised when the stream is closed."""
    if key is None:
        with open(path, "rb") as fh:
            yield fh
        return
    from orchestrator_data.backups.crypto import decrypt_file

    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def pump() -> None:
        try:
            decrypt_file(path, Path(f"/proc/self/fd/{write_fd}"), key)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            failure.append(exc)
        finally:
            os.close(write_fd)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    reader = os.fdopen(read_fd, "rb")
    try:
        yield reader
        while reader.read(1 << 20):  # drain, so the writer reaches the end and authenticates the last chunk
            pass
    except BaseException:
        reader.close()
        thread.join()
        if failure and not isinstance(failure[0], BrokenPipeError):
            raise failure[0] from None  # the reader saw a cut stream; the cause is the decryption's
        raise
    reader.close()
    thread.join()
    if failure:
        raise failure[0]


class Hashing:
    """A readable wrapper that hashes and counts every byte read, in a thread of its own (sha256 is the
    slowest step of the pass, and hashlib releases the GIL): the stored file's sha256 is checked in the
    same pass that decrypts it, so the file is read from disk once."""

    def __init__(self, source: BinaryIO):
        import hashlib
        from concurrent.futures import ThreadPoolExecutor

        self.source, self.size = source, 0
        self._digest = hashlib.sha256()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")  # one worker: in order

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if data:
            self._worker.submit(self._digest.update, data)
            self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def hexdigest(self) -> str:
        self._worker.shutdown(wait=True)
        return self._digest.hexdigest()

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)


ENVELOPE_HEAD = 28   # the encryption's header: magic, chunk size, the file's random id (backups/crypto.py)


class Counting:
    """Hashing's stand-in where the stored file's authentication is the check (encrypted, with its envelope
    id in the manifest): counts the bytes and keeps the envelope's header, no sha256."""

    def __init__(self, source: BinaryIO):
        self.source, self.size, self.head = source, 0, b""

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if data and len(self.head) < ENVELOPE_HEAD:
            self.head += data[: ENVELOPE_HEAD - len(self.head)]
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def hexdigest(self) -> None:
        return None

    def close(self) -> None:
        pass


def envelope_id(head: bytes) -> str | None:
    """The random file id in an encrypted file's header (every chunk's authentication covers the header)."""
    from orchestrator_data.backups.crypto import MAGIC

    if len(head) < ENVELOPE_HEAD or head[:8] != MAGIC:
        return None
    return head[12:ENVELOPE_HEAD].hex()


class _TarInput:
    """tar's stdin. tar stops reading at the archive's end marker and exits, possibly before the padding
    after it was sent: later writes are dropped (the source is still read to its end, so every byte is
    still hashed and authenticated), and tar's exit status says whether it unpacked everything."""

    def __init__(self, pipe, cancelled=None):
        self.pipe, self.closed_early, self.cancelled = pipe, False, cancelled

    def write(self, data: bytes) -> None:
        if self.cancelled is not None and self.cancelled.is_set():
            raise Cancelled()
        if self.closed_early:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[self.pipe.write(view):]
        except BrokenPipeError:
            self.closed_early = True

    def close(self) -> None:
        try:
            self.pipe.close()
        except BrokenPipeError:
            pass


PIPE_BYTES = 1 << 20   # the tar pipe's buffer: one chunk fits, so decryption and tar overlap instead of taking turns


def _grow_pipe(fileno: int) -> None:
    import fcntl

    try:
        fcntl.fcntl(fileno, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except OSError:  # above /proc/sys/fs/pipe-max-size for an unprivileged user: keep the default
        pass


class Cancelled(OperationFailed):
    """The unpacking was no longer wanted (a restore refused while it ran ahead); the refusal, not
    this, is what the caller reports."""


def extract(path: Path, key: bytes | None, destination: Path, cancelled=None, *,
            hashed: bool = True) -> tuple[int, str | None, bytes]:
    """Unpack a stored tar (decrypting and authenticating it on the way, through a pipe) into
    `destination` with the system's tar: Python's tarfile took seconds for what tar does in a fraction.
    GNU tar refuses absolute and `..` member names by default. Returns the stored file's (size, sha256,
    envelope header when not hashed), read in the same pass: the caller compares them with the manifest before anything uses
    `destination`. `hashed=False` (an encrypted file whose every chunk is authenticated on the way, its
    envelope id checked from the first bytes) skips the sha256. `cancelled` (a threading.Event) stops it
    between chunks, raising Cancelled."""
    import subprocess

    destination.mkdir(parents=True, exist_ok=True)
    # -b 256 -B: read the pipe 128 KiB at a time (tar's default, 10 KiB reads, halved its speed here)
    process = subprocess.Popen(["tar", "-x", "-b", "256", "-B", "-f", "-", "-C", str(destination), "--no-same-owner"],
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    _grow_pipe(process.stdin.fileno())
    stored = None
    sink = _TarInput(process.stdin, cancelled)
    try:
        with open(path, "rb", buffering=0) as raw:
            stored = Hashing(raw) if hashed else Counting(raw)
            if key is None:
                while chunk := stored.read(1 << 20):
                    sink.write(chunk)
            else:
                from orchestrator_data.backups.crypto import decrypt_stream

                decrypt_stream(stored, sink, key)
                stored.drain()  # nothing is left after the final chunk, or decryption refused it
        sink.close()
    except BaseException:
        process.kill()
        process.wait()
        if stored is not None:
            stored.close()
        raise
    stderr = process.stderr.read().decode("utf-8", "replace")
    if process.wait() != 0:
        stored.close()
        raise OSError(f"tar could not unpack {path.name}: {' '.join(stderr.split())[:200]}")
    return stored.size, stored.hexdigest(), b"" if hashed else stored.head
