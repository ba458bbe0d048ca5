"""`orchestrator-data backup create|list|verify|restore-check|prune`.

Exit codes: 0 done/ok; 1 a check failed (checksum, restore, mismatch) or a tool/server failed;
2 bad input (unknown backup id, missing/malformed/wrong encryption key, bad configuration)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data.backups import (
    BackupKeyError,
    BackupNotFound,
    create_backup,
    list_backups,
    prune,
    restore_check,
    verify_backup,
)
from orchestrator_data.cli import output
from orchestrator_data.cli.context import load_or_exit, resolve_or_exit

app = typer.Typer(help="PostgreSQL backups: create, list, verify, restore-check, prune.", no_args_is_help=True)

BackupId = Annotated[str, typer.Argument(help="A backup id, or 'latest'.")]


def _fail(exc: BaseException) -> typer.Exit:
    """Map an exception to its exit code, printing a redacted message."""
    if isinstance(exc, (BackupNotFound, BackupKeyError)):
        output.error(str(exc))
        return typer.Exit(2)
    output.error(f"{type(exc).__name__}: {exc}")
    return typer.Exit(1)


def _encrypted(settings, backup_id: str) -> bool:
    from orchestrator_data.backups import get_backup

    return get_backup(settings.backup_dir, backup_id).encrypted


def _size(n: int | None) -> str:
    return output._bytes(n)


@app.command("create")
def create(
    no_compress: Annotated[bool, typer.Option("--no-compress", help="Store the dump uncompressed (-Z 0).")] = False,
) -> None:
    """Take a backup now: pg_dump -Fc in an exported snapshot, with per-table checksums, encrypted when
    BACKUP_ENCRYPTION_KEY is set."""
    settings = load_or_exit()
    url = resolve_or_exit(settings, "postgres")
    try:
        entry = create_backup(url, settings.backup_dir, encryption_key=settings.backup_key_bytes,
                              compress=not no_compress)
    except Exception as exc:  # noqa: BLE001 - reported with its exit code, redacted
        raise _fail(exc) from None
    tables = entry.manifest["tables"]
    output.info(f"{output.OK} backup {entry.id}: {_size(entry.size_bytes)}, {len(tables)} tables, "
                f"{sum(t['rows'] for t in tables.values()):,} rows, "
                f"{'encrypted' if entry.encrypted else 'not encrypted'}, head {entry.migration_head}")
    output.info(f"  path {entry.path}")
    output.info(f"  sha256 {entry.sha256}")


def _check(ok: bool | None, at) -> str:
    if ok is None:
        return "-"
    return f"{'ok' if ok else 'FAILED'} {at:%Y-%m-%d %H:%M}" if at else ("ok" if ok else "FAILED")


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Backups, newest first: id, time, size, path, verified (sha256) and restore-checked or not."""
    settings = load_or_exit()
    entries = list_backups(settings.backup_dir)
    if as_json:
        output.print_json([e.as_dict() for e in entries])
        return
    if not entries:
        output.info(f"no backups in {settings.backup_dir}")
        return
    table = Table(title=f"backups in {settings.backup_dir}", title_justify="left")
    for column in ("id", "created (UTC)", "size", "encrypted", "verified", "restore check", "path"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.id, f"{e.created_at:%Y-%m-%d %H:%M:%S}", _size(e.size_bytes),
                      "yes" if e.encrypted else "no", _check(e.verified_ok, e.verified_at),
                      _check(e.restore_check_ok, e.restore_checked_at), str(e.path))
    output.console.print(table)


@app.command("verify")
def verify(backup_id: BackupId) -> None:
    """Check the stored file against its manifest (size, sha256; every chunk's tag when encrypted and
    the key is set). No restore."""
    settings = load_or_exit()
    try:
        result = verify_backup(settings.backup_dir, backup_id, encryption_key=settings.backup_key_bytes)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from None
    if not result.ok:
        for problem in result.problems:
            output.error(f"backup {result.backup_id}: {problem}")
        raise typer.Exit(1)
    extra = ""
    if result.authenticated:
        extra = ", every chunk authenticated"
    elif result.authenticated is None and settings.backup_key_bytes is None and _encrypted(settings, result.backup_id):
        extra = " (encrypted: set BACKUP_ENCRYPTION_KEY to authenticate its chunks too)"
    output.info(f"{output.OK} backup {result.backup_id}: sha256 matches the manifest{extra}")


@app.command("restore-check")
def restore_check_cmd(backup_id: BackupId) -> None:
    """Restore into a scratch database (dropped afterwards), compare every table with the manifest."""
    settings = load_or_exit()
    url = resolve_or_exit(settings, "postgres")
    try:
        result = restore_check(url, settings.backup_dir, backup_id, encryption_key=settings.backup_key_bytes)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from None
    if not result.ok:
        output.error(f"restore check of {result.backup_id} FAILED at {result.stage}; first differences:")
        for difference in result.differences:
            output.error(f"  {difference}")
        raise typer.Exit(1)
    output.info(f"{output.OK} backup {result.backup_id} restored and matches its manifest: "
                f"{result.tables_compared} tables, restore {result.restore_duration_s:.2f} s (RTO), "
                f"restored size {_size(result.restored_size_bytes)}, check {result.duration_s:.2f} s")


@app.command("prune")
def prune_cmd(
    keep_daily: Annotated[int, typer.Option("--keep-daily", min=0, help="Days to keep one backup of.")] = 7,
    keep_weekly: Annotated[int, typer.Option("--keep-weekly", min=0, help="ISO weeks to keep one backup of.")] = 4,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete backups outside the retention policy; the newest verified backup is always kept."""
    settings = load_or_exit()
    try:
        result = prune(settings.backup_dir, keep_daily, keep_weekly, dry_run=dry_run)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from None
    if as_json:
        output.print_json({**result.as_dict(), "dry_run": dry_run})
        return
    verb = "would delete" if dry_run else "deleted"
    for entry in result.deleted:
        output.info(f"{verb} {entry.id}")
    for entry in result.kept:
        output.info(f"kept {entry.id} ({', '.join(result.reasons[entry.id])})")
    output.info(f"{len(result.kept)} kept, {len(result.deleted)} {verb}")
