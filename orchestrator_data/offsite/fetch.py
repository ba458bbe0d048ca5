"""Bringing copies back from the bucket, each file verified against the sha256 recorded at its upload
(and a dump's file against its manifest) before anything is used:

- `fetch_dump`: one logical dump into a backups directory, assembled in `.tmp-<id>/` and renamed into
  place when complete, so the dump catalogue never lists half of one; `backup restore-check` and
  everything else then read it as any local dump.
- `fetch_chain`: the recovery chain (archive description, restore points, WAL, base backups) into a new,
  empty directory laid out as RECOVERY_DIR, for `recovery restore --from-offsite`."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from orchestrator_data.offsite import catalogue as catalogue_module, keys
from orchestrator_data.offsite.errors import OffsiteCorrupt, OffsiteMissing, OffsiteRefused
from orchestrator_data.offsite.store import ObjectStore
from orchestrator_data.progress import Report, quiet


def resolve_dump(catalogue: catalogue_module.Catalogue, backup_id: str) -> str:
    if not catalogue.dumps:
        raise OffsiteMissing(f"no dumps in {catalogue.where}")
    if backup_id == "latest":
        return catalogue.dumps[-1]  # ids sort by their UTC time
    if backup_id not in catalogue.dumps:
        raise OffsiteMissing(f"no dump {backup_id!r} in {catalogue.where}")
    return backup_id


def fetch_dump(store: ObjectStore, backup_dir: Path, backup_id: str, on_progress: Report = quiet) -> str:
    """Download dump `backup_id` (or "latest") into `backup_dir`/<id>/; returns the id. Refuses (nothing
    written) when the directory already holds that backup."""
    from orchestrator_data.backups import workdirs
    from orchestrator_data.backups.catalog import read_json

    catalogue = catalogue_module.read(store)
    backup_id = resolve_dump(catalogue, backup_id)
    backup_dir = Path(backup_dir)
    final = backup_dir / backup_id
    if final.exists():
        raise OffsiteRefused(f"backup {backup_id} is already in {backup_dir}: nothing fetched")
    backup_dir.mkdir(parents=True, exist_ok=True)
    temporary = backup_dir / f"{workdirs.BACKUP_PREFIX}{backup_id}"
    temporary.mkdir(mode=0o700)
    try:
        with workdirs.in_use(temporary):
            files = catalogue.files_of("dumps", backup_id)
            # the manifest first here: it names the one other file wanted, and what its sha256 must be
            store.download(keys.dump(backup_id, keys.MANIFEST), temporary / keys.MANIFEST)
            manifest = read_json(temporary / keys.MANIFEST)
            name = manifest.get("file")
            if not any(o.key == keys.dump(backup_id, str(name)) for o in files):
                raise OffsiteCorrupt(f"dump {backup_id} in {store.config.where}: its manifest names {name!r}, "
                                     "which the bucket does not hold")
            from orchestrator_data.backups.catalog import contained_file

            target = contained_file(temporary, name)
            got = store.download(keys.dump(backup_id, name), target)
            on_progress("fetch", got.size, None, "bytes")
            if (got.sha256, got.size) != (manifest.get("sha256"), manifest.get("size_bytes")):
                raise OffsiteCorrupt(f"dump {backup_id} in {store.config.where}: {name} does not match its manifest")
            os.replace(temporary, final)  # the backup appears complete or not at all
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return backup_id


def fetch_chain(store: ObjectStore, root: Path, on_progress: Report = quiet) -> dict:
    """Download the recovery chain into `root` (new or empty), laid out as RECOVERY_DIR. Returns what came:
    {"base_backups": [...], "wal_files": n, "bytes": n}."""
    catalogue = catalogue_module.read(store)
    if keys.ARCHIVE_INFO not in catalogue.objects or not catalogue.base_backups:
        raise OffsiteMissing(f"no recovery chain in {catalogue.where} (no archive.json or no base backup): "
                             "push one with `orchestrator-data backup offsite push`")
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise OffsiteRefused(f"{root} is not empty: the chain is fetched into a new directory")
    (root / "wal").mkdir(parents=True, exist_ok=True)
    (root / "base").mkdir(exist_ok=True)
    os.chmod(root, 0o700)
    fetched = {"base_backups": list(catalogue.base_backups), "wal_files": 0, "bytes": 0}

    def get(key: str, destination: Path) -> None:
        fetched["bytes"] += store.download(key, destination).size
        on_progress("fetch", fetched["bytes"], catalogue.total_bytes, "bytes")

    get(keys.ARCHIVE_INFO, root / keys.ARCHIVE_INFO)
    if keys.RESTORE_POINTS in catalogue.objects:
        get(keys.RESTORE_POINTS, root / keys.RESTORE_POINTS)
    for name in catalogue.wal_files:
        if "/" in name or name.startswith("."):
            continue
        get(keys.wal(name), root / "wal" / name)
        fetched["wal_files"] += 1
    for backup_id in catalogue.base_backups:
        temporary = root / "base" / f".tmp-{backup_id}"
        temporary.mkdir(mode=0o700)
        for item in catalogue.files_of("base", backup_id):
            name = item.key.rsplit("/", 1)[1]
            get(item.key, temporary / name)
        os.replace(temporary, root / "base" / backup_id)  # manifest and files together
    return fetched


@contextlib.contextmanager
def dump_workdir(store: ObjectStore, backup_dir: Path, backup_id: str, on_progress: Report = quiet):
    """A dump fetched into a private `.restore-offsite-*` directory of `backup_dir` (removed afterwards,
    and by `backup prune` if the process is killed: it may hold a decrypted copy later). Yields
    (directory, id): a backups directory of its own holding that one dump."""
    from orchestrator_data.backups import workdirs

    Path(backup_dir).mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"{workdirs.RESTORE_PREFIX}offsite-", dir=backup_dir))
    try:
        with workdirs.in_use(directory):
            yield directory, fetch_dump(store, directory, backup_id, on_progress)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def chain_workdir(store: ObjectStore, recovery_root: Path, on_progress: Report = quiet):
    """The recovery chain fetched into a private scratch directory of RECOVERY_DIR (removed afterwards).
    Yields its Layout, which `recovery.restore.restore` reads as it reads RECOVERY_DIR."""
    from orchestrator_data.recovery.layout import Layout

    scratch = Layout(Path(recovery_root).expanduser().absolute()).scratch("offsite")
    try:
        fetch_chain(store, scratch, on_progress)
        yield Layout(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
