"""`orchestrator-data backup create|list|verify|restore-check|prune` and `backup keys rotate|list`.

Exit codes: 0 done/ok; 1 a check failed (checksum, restore, mismatch) or a tool/server failed;
2 bad input (unknown backup id, missing/malformed/wrong encryption key, a key ring file that is
missing, open to others or inside BACKUP_DIR, bad configuration);
128 + the signal's number (143 SIGTERM, 130 SIGINT) when `create` or `restore-check` was interrupted."""

from __future__ import annotations

import contextlib
import signal
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data.cli import offsite, output, recording
from orchestrator_data.cli.choices import TEMP_GRACE_HOURS
from orchestrator_data.cli.context import load_settings, service_url
from orchestrator_data.cli.offsite import app as offsite_app

app = typer.Typer(rich_markup_mode=None, help="PostgreSQL backups: create, list, verify, restore-check, prune; "
                  "the key ring.", no_args_is_help=True)
keys_app = typer.Typer(rich_markup_mode=None, help="The backup key ring: rotate to a new key, list the keys.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(offsite_app, name="offsite")

BackupId = Annotated[str, typer.Argument(help="A backup id, or 'latest'.")]


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived. A BaseException, like KeyboardInterrupt, so that no `except
    Exception` on the way swallows it, while every `finally` and `except BaseException` cleanup runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _interruptible(what: str, cleaned_up: str):
    """Run the block with SIGTERM and SIGINT raising Interrupted, so the operation's own cleanup runs
    (the default SIGTERM ends the process on the spot and leaves pg_dump running and a temp dir
    behind); then print one line and exit 128 + the signal's number."""
    signals = (signal.SIGTERM, signal.SIGINT)

    def handler(signum, frame):
        for s in signals:  # one interruption: a second signal must not cut the cleanup short
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    except Interrupted as exc:
        output.error(f"{what} interrupted by {signal.Signals(exc.signum).name}: {cleaned_up}")
        raise typer.Exit(128 + exc.signum) from None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _encrypted(settings, backup_id: str) -> bool:
    from orchestrator_data.backups import get_backup

    return get_backup(settings.backup_dir, backup_id).encrypted


@app.command("create")
def create(
    no_compress: Annotated[bool, typer.Option("--no-compress", help="Store the dump uncompressed (-Z 0).")] = False,
) -> None:
    """Take a backup now: pg_dump -Fc in an exported snapshot, with per-table checksums, encrypted with
    the key ring's current key when there is one (BACKUP_KEYRING_FILE, BACKUP_ENCRYPTION_KEY)."""
    from orchestrator_data.backups import create_backup, load_key_ring
    from orchestrator_data.cli import progress

    settings = load_settings()
    keys = load_key_ring(settings)
    url = service_url(settings, "postgres")
    offsite.precheck(settings)
    with _interruptible("backup create", "pg_dump stopped, temporary directory removed, no backup written"), \
            progress.shown() as report:
        entry = create_backup(url, settings.backup_dir, keys=keys, compress=not no_compress, on_progress=report)
    tables = entry.manifest["tables"]
    output.info(f"{output.OK} backup {entry.id}: {output.human_bytes(entry.size_bytes)}, {len(tables)} tables, "
                f"{sum(t['rows'] for t in tables.values()):,} rows, "
                f"{f'encrypted with key {keys.current.id}' if entry.encrypted else 'not encrypted'}, "
                f"head {entry.migration_head}")
    output.info(f"  path {entry.path}")
    recording.record(settings, "backup create", lambda keys: [(keys.POSTGRES_BACKUP, entry)])
    output.info(f"  sha256 {entry.sha256}")
    offsite.push_if_configured(settings, dump_ids=[entry.id])


def _check(ok: bool | None, at) -> str:
    if ok is None:
        return "-"
    return f"{'ok' if ok else 'FAILED'} {at:%Y-%m-%d %H:%M}" if at else ("ok" if ok else "FAILED")


def _age(workdir) -> str:
    minutes = int(workdir.age().total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Backups, newest first: id, time, size, path, verified (sha256) and restore-checked or not; then any
    temporary directories (a backup or restore check running, or left behind by one that was killed)."""
    from orchestrator_data.backups import list_backups
    from orchestrator_data.backups.workdirs import list_workdirs

    settings = load_settings()
    entries = list_backups(settings.backup_dir)
    temporary = list_workdirs(settings.backup_dir)
    if as_json:
        output.print_json({"backups": [e.as_dict() for e in entries],
                           "temporary": [w.as_dict() for w in temporary]})
        return
    if not entries:
        output.info(f"no backups in {settings.backup_dir}")
    else:
        table = Table(title=f"backups in {settings.backup_dir}", title_justify="left")
        for column in ("id", "created (UTC)", "size", "encrypted", "verified", "restore check", "path"):
            table.add_column(column)
        for e in entries:
            table.add_row(e.id, f"{e.created_at:%Y-%m-%d %H:%M:%S}", output.human_bytes(e.size_bytes),
                          "yes" if e.encrypted else "no", _check(e.verified_ok, e.verified_at),
                          _check(e.restore_check_ok, e.restore_checked_at), str(e.path))
        output.console.print(table)
    if temporary:
        table = Table(title="temporary directories", title_justify="left")
        for column in ("name", "of a", "state", "last change", "size"):
            table.add_column(column)
        for w in temporary:
            state = "in use" if w.in_use else "abandoned (prune removes it after the grace period)"
            table.add_row(w.path.name, w.kind, state, f"{_age(w)} ago", output.human_bytes(w.size_bytes))
        output.console.print(table)


@app.command("verify")
def verify(backup_id: BackupId) -> None:
    """Check the stored file against its manifest (size, sha256; every chunk's tag when encrypted and
    the key is set). No restore."""
    from orchestrator_data.backups import load_key_ring, verify_backup

    settings = load_settings()
    keys = load_key_ring(settings)
    result = verify_backup(settings.backup_dir, backup_id, keys=keys)
    if not result.ok:
        for problem in result.problems:
            output.error(f"backup {result.backup_id}: {problem}")
        raise typer.Exit(1)
    extra = ""
    if result.authenticated:
        extra = ", every chunk authenticated"
    elif result.authenticated is None and not keys.keys and _encrypted(settings, result.backup_id):
        extra = " (encrypted: set BACKUP_KEYRING_FILE or BACKUP_ENCRYPTION_KEY to authenticate its chunks too)"
    output.info(f"{output.OK} backup {result.backup_id}: sha256 matches the manifest{extra}")


@app.command("restore-check")
def restore_check_cmd(
    backup_id: BackupId,
    from_offsite: Annotated[bool, typer.Option(
        "--from-offsite", help="Take the dump from the object store (OFFSITE_BUCKET), not BACKUP_DIR: fetched "
                               "into a private directory, verified, checked, removed.")] = False,
) -> None:
    """Restore into a scratch database (dropped afterwards), compare every table with the manifest."""
    from orchestrator_data.backups import load_key_ring, restore_check
    from orchestrator_data.cli import progress

    settings = load_settings()
    keys = load_key_ring(settings)
    url = service_url(settings, "postgres")
    with _interruptible("restore check", "pg_restore stopped, scratch database dropped, nothing recorded"), \
            progress.shown() as report, contextlib.ExitStack() as source:
        backup_dir = settings.backup_dir
        if from_offsite:
            from orchestrator_data.offsite.fetch import dump_workdir

            backup_dir, backup_id = source.enter_context(
                dump_workdir(offsite.store_of(settings), settings.backup_dir, backup_id, report))
        result = restore_check(url, backup_dir, backup_id, keys=keys,
                               erasure_ledger=settings.gdpr_ledger_path, on_progress=report)
    if not result.ok:  # as the asset: a failed check fails, it does not materialize
        output.error(f"restore check of {result.backup_id} FAILED at {result.stage}; first differences:")
        for difference in result.differences:
            output.error(f"  {difference}")
        raise typer.Exit(1)
    output.info(f"{output.OK} backup {result.backup_id} restored and matches its manifest: "
                f"{result.tables_compared} tables, restore {result.restore_duration_s:.2f} s (RTO), "
                f"restored size {output.human_bytes(result.restored_size_bytes)}, check {result.duration_s:.2f} s")
    recording.record(settings, "backup restore-check", lambda keys: [(keys.POSTGRES_RESTORE_CHECK, result)])


@app.command("prune")
def prune_cmd(
    window_days: Annotated[float | None, typer.Option(
        "--window-days", min=0, help="Keep every backup younger than this many days (default "
                                     "RECOVERY_WINDOW_DAYS).")] = None,
    keep_last: Annotated[int | None, typer.Option(
        "--keep-last", min=0, help="Keep the newest N backups whatever their age (default BACKUP_KEEP_LAST).")] = None,
    keep_daily: Annotated[int, typer.Option("--keep-daily", min=0, help="Also keep the newest backup of each of "
                                                                        "the last N days.")] = 0,
    keep_weekly: Annotated[int, typer.Option("--keep-weekly", min=0, help="Also keep the newest backup of each of "
                                                                          "the last N ISO weeks.")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
    temp_grace_hours: Annotated[float, typer.Option(
        "--temp-grace-hours", min=0,
        help="Remove temporary directories left by killed backups and restore checks once unchanged this long "
             "(never one still in use).")] = TEMP_GRACE_HOURS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete backups older than the recovery window and not among the newest N — the rule of the daily
    postgres_backup_prune_job (the newest verified and restore-checked backups are always kept) — and
    the temporary directories that killed backups and restore checks left behind."""
    from orchestrator_data.backups import prune

    settings = load_settings()
    window = settings.recovery_window_days if window_days is None else window_days
    keep = settings.backup_keep_last if keep_last is None else keep_last
    result = prune(settings.backup_dir, keep_daily, keep_weekly, window_days=window, keep_last=keep,
                   dry_run=dry_run, temp_grace=timedelta(hours=temp_grace_hours))
    if not dry_run:
        recording.record(settings, "backup prune", lambda keys: [(keys.POSTGRES_BACKUP_PRUNE, result)])
    if as_json:
        output.print_json({**result.as_dict(), "dry_run": dry_run})
        return
    verb = "would delete" if dry_run else "deleted"
    for entry in result.deleted:
        output.info(f"{verb} {entry.id} ({output.human_bytes(entry.size_bytes)})")
    for entry in result.kept:
        output.info(f"kept {entry.id} ({', '.join(result.reasons[entry.id])})")
    for workdir in result.temporary_removed:
        output.info(f"{verb} {workdir.path.name} (abandoned {workdir.kind}, unchanged for {_age(workdir)})")
    for workdir in result.temporary_kept:
        why = "in use" if workdir.in_use else f"unchanged for only {_age(workdir)}"
        output.info(f"kept {workdir.path.name} ({why})")
    temporary = ""
    if result.temporary_removed or result.temporary_kept:
        temporary = (f"; temporary directories: {len(result.temporary_kept)} kept, "
                     f"{len(result.temporary_removed)} {verb}")
    oldest = result.oldest_kept
    output.info(f"{len(result.kept)} kept, {len(result.deleted)} {verb} ({output.human_bytes(result.bytes_freed)})"
                f"{temporary}; window {window:g} days, newest {keep} kept"
                + (f"; oldest kept {oldest.id}" if oldest else ""))


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new random 32-byte key to the key ring file (BACKUP_KEYRING_FILE; created 0600 if absent):
    new backups use it, every older key still decrypts. Prints the new key's id, never a key."""
    from orchestrator_data.backups.keys import rotate_key

    settings = load_settings()
    rotation = rotate_key(settings.backup_keyring_file, settings.backup_key_bytes, settings.backup_dir)
    if rotation.imported is not None:
        output.info(f"BACKUP_ENCRYPTION_KEY (key {rotation.imported.id}) recorded in the ring, so the file "
                    "alone opens every backup")
    output.info(f"{output.OK} new current key {rotation.key.id}: {rotation.count} keys in {rotation.file}")
    output.note("back the key ring file up now, apart from the backups (docs/backups.md#keys)")


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The keys of the ring, oldest first: id, created, where it comes from, which is current, how many
    dumps in BACKUP_DIR, base backups and WAL files of the recovery chain use it; then the ids they name
    that the ring lacks (those cannot be opened). A key may be retired once nothing kept uses it."""
    from orchestrator_data.backups.keys import key_usage, read_key_ring
    from orchestrator_data.recovery import keying
    from orchestrator_data.recovery.layout import Layout

    settings = load_settings()
    ring = read_key_ring(settings.backup_keyring_file, settings.backup_key_bytes, settings.backup_dir,
                         missing_ok=True)
    uses = key_usage(ring, settings.backup_dir, keying.key_usage(Layout.from_settings(settings)))
    if as_json:
        output.print_json({"keyring_file": str(ring.file) if ring.file else None,
                           "current": ring.current.id if ring.current else None,
                           "keys": [use.as_dict() for use in uses]})
        return
    if not uses:
        output.info("no backup keys: new backups are not encrypted (docs/backups.md#keys)")
        return
    table = Table(title=f"backup keys ({ring.file or 'BACKUP_KEYRING_FILE unset'})", title_justify="left")
    for column in ("id", "created (UTC)", "source", "current", "dumps", "base backups", "WAL files"):
        table.add_column(column)
    for use in uses:
        created = f"{use.key.created_at:%Y-%m-%d %H:%M:%S}" if use.key and use.key.created_at else "-"
        source = use.key.source if use.key else "MISSING from the ring"
        table.add_row(use.key_id, created, source, "yes" if use.current else "", str(use.dumps),
                      str(use.base_backups), str(use.wal_segments))
    output.console.print(table)
    missing = [use for use in uses if use.key is None]
    if missing:
        output.error(f"{sum(u.dumps for u in missing)} dump(s), {sum(u.base_backups for u in missing)} base "
                     f"backup(s) and {sum(u.wal_segments for u in missing)} WAL file(s) use keys the ring lacks: "
                     f"{', '.join(u.key_id for u in missing)}")
        raise typer.Exit(1)
