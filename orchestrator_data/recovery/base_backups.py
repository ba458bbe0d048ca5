"""Base backups: `pg_basebackup -X none` (the WAL archive is the WAL source), full or incremental
from the previous backup's manifest (summarize_wal), streamed straight into the encryption.

    RECOVERY_DIR/base/<id>/base.tar[.enc]          the cluster as pg_basebackup sent it (tar)
    RECOVERY_DIR/base/<id>/backup_manifest[.enc]   PostgreSQL's manifest (pg_verifybackup, --incremental)
    RECOVERY_DIR/base/<id>/manifest.json           ours, written last (id, kind, parent, LSNs, times, sha256, key_id)

Assembled in base/.tmp-<id>/ and renamed into place when complete."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestrator_data.backups import _pg
from orchestrator_data.backups.crypto import encrypt_stream, key_id as key_id_of
from orchestrator_data.recovery import status as archive_status
from orchestrator_data.recovery.errors import ArchiveCorrupt, RecoveryError, RecoveryRefused
from orchestrator_data.recovery.layout import Layout, int_to_lsn, lsn_to_int, new_id
from orchestrator_data.stack.common import fsync_directory
from orchestrator_data.recovery.server import Primary, run_tool, server_facts, tool
from orchestrator_data.recovery.tarstream import (
    ENVELOPE_HEAD, Cancelled, Tee, TarMemberCatcher, envelope_id, extract, plaintext,
)

MANIFEST = "manifest.json"
DATA = "base.tar"
PG_MANIFEST = "backup_manifest"
ENC = ".enc"
FORMAT = 2   # 2: an encrypted backup's manifest names its envelope id (unpack's check); 1 is still read

KeyFor = Callable[[str], bytes]


@dataclass(frozen=True)
class BaseBackup:
    id: str
    path: Path
    kind: str                 # full | incremental
    parent: str | None
    timeline: int
    start_lsn: int
    end_lsn: int
    started_at: datetime
    finished_at: datetime     # at or after the moment the backup became consistent (its end LSN)
    size_bytes: int
    sha256: str
    key_id: str | None
    system_identifier: str
    manifest: dict

    @property
    def data_file(self) -> Path:
        return self.path / (DATA + (ENC if self.key_id else ""))

    @property
    def pg_manifest_file(self) -> Path:
        return self.path / (PG_MANIFEST + (ENC if self.key_id else ""))

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "parent": self.parent, "timeline": self.timeline,
                "start_lsn": int_to_lsn(self.start_lsn), "end_lsn": int_to_lsn(self.end_lsn),
                "started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat(),
                "size_bytes": self.size_bytes, "sha256": self.sha256, "encrypted": self.key_id is not None,
                "key_id": self.key_id, "path": str(self.path)}


def _from_dir(path: Path) -> BaseBackup:
    m = json.loads((path / MANIFEST).read_text())
    return BaseBackup(
        id=m["id"], path=path, kind=m["kind"], parent=m.get("parent"), timeline=int(m["timeline"]),
        start_lsn=lsn_to_int(m["start_lsn"]), end_lsn=lsn_to_int(m["end_lsn"]),
        started_at=datetime.fromisoformat(m["started_at"]), finished_at=datetime.fromisoformat(m["finished_at"]),
        size_bytes=int(m["size_bytes"]), sha256=m["sha256"], key_id=m.get("key_id"),
        system_identifier=m["system_identifier"], manifest=m)


def list_base_backups(layout: Layout) -> list[BaseBackup]:
    """Every complete base backup, oldest first."""
    if not layout.base.is_dir():
        return []
    found = []
    for child in layout.base.iterdir():
        if child.name.startswith(".") or not (child / MANIFEST).is_file():
            continue
        try:
            found.append(_from_dir(child))
        except (ValueError, KeyError, TypeError, OSError):
            continue
    return sorted(found, key=lambda b: (b.end_lsn, b.id))


def get_base_backup(layout: Layout, backup_id: str) -> BaseBackup:
    for backup in list_base_backups(layout):
        if backup.id == backup_id:
            return backup
    raise RecoveryRefused(f"no base backup {backup_id!r} in {layout.base}")


def chain_of(layout: Layout, backup: BaseBackup) -> list[BaseBackup]:
    """The full backup and every incremental up to `backup`, oldest first."""
    by_id = {b.id: b for b in list_base_backups(layout)}
    chain = [backup]
    while chain[0].parent:
        parent = by_id.get(chain[0].parent)
        if parent is None:
            raise ArchiveCorrupt(f"base backup {chain[0].id} needs {chain[0].parent}, which is gone")
        chain.insert(0, parent)
    return chain


# -- taking one ------------------------------------------------------------------------------------
def _store(source, target: Path, key: bytes | None, observer=None) -> tuple[int, str]:
    """Copy (encrypting when a key is given) `source` into `target`; returns (stored size, sha256)."""
    digest, size = hashlib.sha256(), 0

    def seen(data: bytes) -> None:
        nonlocal size
        digest.update(data)
        size += len(data)

    reader = Tee(source, observer) if observer else source
    with open(target, "wb") as out:
        if key is not None:
            encrypt_stream(reader, out, key, on_bytes=seen)
        else:
            while chunk := reader.read(1 << 20):
                out.write(chunk)
                seen(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size, digest.hexdigest()


def take_base_backup(primary: Primary, layout: Layout, *, slot: str, key: bytes | None, incremental: bool = False,
                     wait_timeout_s: float = 60.0) -> BaseBackup:
    """Take a base backup. Incremental needs a previous backup of the same cluster and timeline and the
    server's summarize_wal = on. Waits until the archive holds the backup's end LSN."""
    facts = server_facts(primary)
    layout.ensure()
    parent = None
    if incremental:
        candidates = [b for b in list_base_backups(layout)
                      if b.system_identifier == facts.system_identifier and b.timeline == facts.timeline]
        if not candidates:
            raise RecoveryRefused("an incremental base backup needs a previous base backup of this cluster: "
                                  "take a full one first")
        parent = candidates[-1]
    backup_id = new_id()
    temporary = layout.base / f".tmp-{backup_id}"
    temporary.mkdir(mode=0o700)
    started = datetime.now(UTC)
    try:
        args = [tool("pg_basebackup"), "-d", primary.connstr(), "-D", "-", "-F", "t", "-X", "none",
                "--checkpoint=fast", "-l", f"orchestrator-data {backup_id}", "-w"]
        parent_manifest = None
        if parent is not None:
            parent_manifest = temporary / ".parent_manifest"
            with plaintext(parent.pg_manifest_file, _key_of(parent, key)) as stream, open(parent_manifest, "wb") as out:
                shutil.copyfileobj(stream, out)
            args.append(f"--incremental={parent_manifest}")
        catcher = TarMemberCatcher(PG_MANIFEST)
        suffix = ENC if key is not None else ""
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors, env=primary.env("orchestrator-data-base-backup"),
                                       preexec_fn=_pg.dies_with_parent())
            try:
                size, sha256 = _store(process.stdout, temporary / (DATA + suffix), key, catcher.feed)
            finally:
                process.stdout.close()
                code = process.wait()
            errors.seek(0)
            stderr = errors.read().decode("utf-8", "replace")
        if code != 0:
            raise RecoveryError(f"pg_basebackup failed (exit {code}): {_pg.stderr_tail(stderr, 3)}")
        if parent_manifest is not None:
            parent_manifest.unlink()
        if not catcher.content:
            raise RecoveryError("pg_basebackup's stream carried no backup_manifest")
        pg_manifest = json.loads(catcher.content)
        _store(io.BytesIO(catcher.content), temporary / (PG_MANIFEST + suffix), key)
        wal_range = pg_manifest["WAL-Ranges"][-1]
        start_lsn, end_lsn = lsn_to_int(wal_range["Start-LSN"]), lsn_to_int(wal_range["End-LSN"])
        if not archive_status.wait_archived(primary, slot, end_lsn, wait_timeout_s):
            raise RecoveryError(
                f"the WAL archive does not hold the backup's end LSN {int_to_lsn(end_lsn)} after {wait_timeout_s:.0f} s: "
                f"is the archiver running (slot {slot})? See `orchestrator-data recovery status`")
        finished = datetime.now(UTC)
        manifest = {
            "format": FORMAT, "id": backup_id, "kind": "incremental" if parent else "full",
            "parent": parent.id if parent else None, "timeline": int(wal_range["Timeline"]),
            "start_lsn": int_to_lsn(start_lsn), "end_lsn": int_to_lsn(end_lsn),
            "started_at": started.isoformat(), "finished_at": finished.isoformat(),
            "size_bytes": size, "sha256": sha256, "key_id": key_id_of(key) if key is not None else None,
            "system_identifier": facts.system_identifier, "server_version": facts.server_version,
            "segment_size": facts.segment_size,
        }
        if key is not None:
            with open(temporary / (DATA + suffix), "rb") as stored:
                manifest["envelope_id"] = envelope_id(stored.read(ENVELOPE_HEAD))
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        fsync_directory(temporary)
        final = layout.base / backup_id
        os.replace(temporary, final)
        fsync_directory(layout.base)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return _from_dir(final)


def _key_of(backup: BaseBackup, key: bytes | None = None, key_for: KeyFor | None = None) -> bytes | None:
    if backup.key_id is None:
        return None
    if key is not None and key_id_of(key) == backup.key_id:
        return key
    if key_for is None:
        raise RecoveryError(f"base backup {backup.id} is encrypted (key {backup.key_id}) and no backup key is configured")
    return key_for(backup.key_id)


# -- reading one back ------------------------------------------------------------------------------
def _changed(backup: BaseBackup) -> ArchiveCorrupt:
    return ArchiveCorrupt(f"base backup {backup.id}: {backup.data_file.name} does not match its manifest "
                          "(size or sha256): it was changed after it was written")


def check_stored_file(backup: BaseBackup) -> None:
    digest, size = hashlib.sha256(), 0
    try:
        with open(backup.data_file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise ArchiveCorrupt(f"base backup {backup.id}: {backup.data_file.name} is missing") from None
    if size != backup.size_bytes or digest.hexdigest() != backup.sha256:
        raise _changed(backup)


def unpack(backup: BaseBackup, destination: Path, key_for: KeyFor | None, cancelled=None) -> None:
    """Decrypt and unpack the stored file into `destination`, checking it in the same read, and compare
    once the stream ends: a changed file raises ArchiveCorrupt before anything can use `destination` (every
    caller unpacks into a directory of its own and only starts a server on it after this returns).

    The check: an encrypted backup whose manifest names its envelope id (format 2) is proved by its
    encryption — every chunk authenticated with the header (that id), its index and the final flag, so a
    changed, reordered, cut or appended byte fails — and by that id, so another file of the same key put in
    its place fails too: the sha256 over the stored file (the slowest step of the pass) adds nothing and is
    skipped. Otherwise (unencrypted, or format 1) the sha256 of the stored file, as written."""
    if not backup.data_file.is_file():
        raise ArchiveCorrupt(f"base backup {backup.id}: {backup.data_file.name} is missing")
    if backup.data_file.stat().st_size != backup.size_bytes:
        raise _changed(backup)  # cheap, and before any byte is unpacked
    key = _key_of(backup, key_for=key_for)  # a key the ring lacks is bad input, not a corrupt backup
    expected_id = backup.manifest.get("envelope_id") if key is not None else None
    try:
        size, sha256, head = extract(backup.data_file, key, destination, cancelled, hashed=expected_id is None)
    except (RecoveryError, Cancelled):
        raise
    except Exception as exc:  # a failed authentication or a broken tar: the backup is not usable
        raise ArchiveCorrupt(f"base backup {backup.id} cannot be read back: {' '.join(str(exc).split())[:200]}") from None
    if size != backup.size_bytes:
        raise _changed(backup)
    if expected_id is not None:
        if envelope_id(head) != expected_id:
            raise _changed(backup)
    elif sha256 != backup.sha256:
        raise _changed(backup)


def verify_unpacked(backup: BaseBackup, directory: Path, *, checksums: bool = True) -> None:
    """pg_verifybackup on an unpacked backup. Without `checksums` only the files' presence and sizes are
    checked: a restore does that, after the stored file's sha256 (and, encrypted, every chunk's
    authentication) proved the bytes are the ones written; `verify` reads every checksum."""
    args = [tool("pg_verifybackup"), "-n", "-q", *([] if checksums else ["-s"]), str(directory)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise ArchiveCorrupt(f"base backup {backup.id} fails pg_verifybackup: {_pg.stderr_tail(result.stderr, 2)}")


def verify(layout: Layout, backup: BaseBackup, key_for: KeyFor | None) -> dict:
    """Decrypt, unpack into a private scratch directory and run pg_verifybackup; a tampered backup raises
    ArchiveCorrupt. The plaintext exists only inside that directory, which is removed afterwards."""
    scratch = layout.scratch(f"verify-{backup.id}")
    try:
        check_stored_file(backup)  # first, and apart: `verify` names a changed file before it decrypts anything
        unpack(backup, scratch / "data", key_for)
        verify_unpacked(backup, scratch / "data")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"id": backup.id, "ok": True, "verified_at": datetime.now(UTC).isoformat()}


def restore_chain(layout: Layout, backup: BaseBackup, destination: Path, key_for: KeyFor | None,
                  scratch: Path, cancelled=None, mark: Callable[[str], None] | None = None) -> list[str]:
    """Rebuild `backup` (its chain combined when incremental) into `destination`, verifying each piece
    first. Returns the ids used. `mark(step)` is called as each step ends (the restore's timings)."""
    mark = mark or (lambda step: None)
    chain = chain_of(layout, backup)
    if len(chain) == 1:
        unpack(backup, destination, key_for, cancelled)
        mark("unpacked_full")
        verify_unpacked(backup, destination, checksums=False)
        mark("verified")
        return [backup.id]
    parts = [scratch / f"chain-{index}" for index in range(len(chain))]

    def rebuild_piece(piece: BaseBackup, part: Path) -> None:
        unpack(piece, part, key_for, cancelled)
        mark(f"unpacked_{piece.kind}_{piece.id}")
        verify_unpacked(piece, part, checksums=False)

    # the pieces in parallel: creating a cluster's ~1000 files costs more than its bytes here, and file
    # creation in different directories does not queue on one directory's lock
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(chain), thread_name_prefix="unpack") as pool:
        futures = [pool.submit(rebuild_piece, piece, part) for piece, part in zip(chain, parts)]
    for future in futures:
        future.result()  # the first piece's failure, in chain order
    mark("verified")
    combine(parts, destination)
    mark("combined")
    for part in parts:
        shutil.rmtree(part, ignore_errors=True)
    return [piece.id for piece in chain]


def combine(parts: list[Path], destination: Path) -> None:
    """Combine unpacked pieces (oldest first; private scratch copies, changed or removed here) into
    `destination`: in place (combine.py: only the changed blocks are written) when the chain is one it
    knows, else with pg_combinebackup."""
    from orchestrator_data.recovery.combine import NotCombinable, combine_in_place

    try:
        os.replace(combine_in_place(parts, block_size(parts[-1])), destination)
        return
    except NotCombinable:
        pass
    # no fsync here: the restored server syncs its whole data directory before recovery starts; --link: the
    # pieces are scratch copies removed right after, so the output may share their files instead of copying
    run_tool([tool("pg_combinebackup"), "--no-sync", "--link", "-o", str(destination), *map(str, parts)],
             what="pg_combinebackup")


def block_size(data_dir: Path) -> int | None:
    """The cluster's block size, from its pg_control."""
    import re

    result = subprocess.run([tool("pg_controldata"), "-D", str(data_dir)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "LC_ALL": "C"})
    match = re.search(r"^Database block size:\s+(\d+)$", result.stdout, re.M)
    return int(match.group(1)) if match else None
