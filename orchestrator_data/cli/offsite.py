"""`orchestrator-data backup offsite push|list|verify|fetch`: copies off the machine, in S3-compatible object
storage (OFFSITE_BUCKET and friends; docs/backups.md, "Copies off the machine"). `backup create` and
`recovery base-backup` also push on their own when a bucket is configured; `backup restore-check
--from-offsite` and `recovery restore --from-offsite` restore from the bucket alone.

Exit codes: 0 done; 1 an upload, download or check failed (an unreachable endpoint included); 2 bad input
(not configured, unknown bucket, refused credentials, an id the bucket does not hold). Never a credential."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import describe_failure, load_settings

app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                  help="Copies off the machine (S3-compatible object storage): push, list, verify, fetch.")

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _progress(as_json: bool):
    """Progress lines, except under --json (whose stdout is the JSON alone)."""
    from orchestrator_data.cli import progress
    from orchestrator_data.progress import quiet

    return contextlib.nullcontext(quiet) if as_json else progress.shown()


def store_of(settings):
    """The configured store; exit 2 naming OFFSITE_BUCKET when there is none."""
    from orchestrator_data.offsite.config import required
    from orchestrator_data.offsite.store import ObjectStore

    return ObjectStore(required(settings))


def encrypted_wal_only(settings) -> bool:
    from orchestrator_data.recovery import keying

    return keying.current_key(settings) is not None


def said(report) -> str:
    return (f"{len(report.uploaded)} file(s) copied ({output.human_bytes(report.bytes_uploaded)}), "
            f"{len(report.skipped)} already there, each verified by checksum")


def precheck(settings) -> None:
    """Before a backup that will be pushed: a bucket that does not exist or refused credentials stop the
    command now (exit 2, nothing written); an unreachable store does not stop a local backup (said in one
    note; the push afterwards fails with exit 1, and the next push catches up)."""
    from orchestrator_data.errors import DataLayerError
    from orchestrator_data.offsite.config import from_settings
    from orchestrator_data.offsite.errors import OffsiteRefused

    if from_settings(settings) is None:
        return
    try:
        store_of(settings).check_bucket()
    except OffsiteRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - an outage of the store must not cost the local backup
        # said as the CLI says any error: our one line, or a driver's redacted
        said = exc.one_line() if isinstance(exc, DataLayerError) else describe_failure(exc)
        output.note(f"{said}; the backup is taken and kept here")


def push_if_configured(settings, *, dump_ids: list[str] | None = None, base_ids: list[str] | None = None,
                       as_json: bool = False) -> None:
    """After `backup create` (dump_ids) or `recovery base-backup` (base_ids, with the pending WAL): copy
    what was just made off the machine when a bucket is configured; nothing when none is."""
    from orchestrator_data.offsite.config import from_settings

    if from_settings(settings) is None:
        return
    from orchestrator_data.offsite.push import push

    report = push(store_of(settings), backup_dir=settings.backup_dir if dump_ids is not None else None,
                  recovery_root=settings.recovery_root if base_ids is not None else None,
                  dump_ids=dump_ids, base_ids=base_ids, encrypted_wal_only=encrypted_wal_only(settings))
    line = f"off the machine in {report.where}: {said(report)}"
    output.note(line) if as_json else output.info(f"{output.OK} {line}")  # --json output stays JSON
    recording.record(settings, "backup offsite push", lambda keys: [(keys.OFFSITE_COPIES, report)])


@app.command("push")
def push_cmd(as_json: Json = False) -> None:
    """Copy every dump, base backup and completed WAL file that the bucket lacks (manifests last), each
    verified by checksum after upload; what is there with the same checksum is skipped."""
    from orchestrator_data.offsite.push import push

    settings = load_settings()
    store = store_of(settings)
    with _progress(as_json) as report_progress:
        report = push(store, backup_dir=settings.backup_dir, recovery_root=settings.recovery_root,
                      encrypted_wal_only=encrypted_wal_only(settings), on_progress=report_progress)
    recording.record(settings, "backup offsite push", lambda keys: [(keys.OFFSITE_COPIES, report)])
    if as_json:
        output.print_json(report.as_dict())
        return
    output.info(f"{output.OK} {report.where}: {said(report)}")
    output.info(f"  {len(report.dumps)} dump(s), {len(report.base_backups)} base backup(s), "
                f"{report.wal_files} WAL file(s) off the machine")
    if report.held_back:
        output.note(f"{len(report.held_back)} WAL file(s) not yet sealed (encrypted) by the archiver wait for the "
                    "next push")


@app.command("list")
def list_cmd(as_json: Json = False) -> None:
    """What the bucket holds: dumps and base backups (those whose manifest is there), WAL files, size, and
    the age of the newest copy."""
    from orchestrator_data.offsite import catalogue

    found = catalogue.read(store_of(load_settings()))
    if as_json:
        output.print_json(found.as_dict())
        return
    age = found.newest_copy_age_s()
    output.info(f"{found.where}: {len(found.objects)} object(s), {output.human_bytes(found.total_bytes)}; newest "
                f"copy {'never' if age is None else f'{age / 3600:.1f} h ago'}")
    output.info(f"  dumps: {', '.join(found.dumps) or 'none'}")
    output.info(f"  base backups: {', '.join(found.base_backups) or 'none'}")
    output.info(f"  WAL files: {len(found.wal_files)}")
    if found.incomplete:
        output.note(f"files without a manifest (an interrupted copy): {', '.join(found.incomplete)}")


@app.command("verify")
def verify_cmd(
    download: Annotated[bool, typer.Option("--download", help="Read every object back and hash it, even where "
                                           "the local file is still there.")] = False,
    as_json: Json = False,
) -> None:
    """Check every object: against the local file it came from (size, the store's SHA-256 checksum, the
    recorded sha256), or, where none is left, read back and hashed. Exit 1 on any difference."""
    from orchestrator_data.offsite import catalogue

    settings = load_settings()
    with _progress(as_json) as report_progress:
        result = catalogue.verify(store_of(settings), backup_dir=settings.backup_dir,
                                  recovery_root=settings.recovery_root, download=download,
                                  on_progress=report_progress)
    if as_json:
        output.print_json(result.as_dict())
    else:
        for problem in result.problems:
            output.error(problem)
        if result.ok:
            output.info(f"{output.OK} {result.where}: {result.checked} object(s) verified ({result.against_local} "
                        f"against the local file, {result.read_back} read back, "
                        f"{output.human_bytes(result.bytes_read_back)})")
    if not result.ok:
        raise typer.Exit(1)


@app.command("fetch")
def fetch_cmd(backup_id: Annotated[str, typer.Argument(help="A dump's id in the bucket, or 'latest'.")]) -> None:
    """Bring a dump back from the bucket into BACKUP_DIR (verified; it appears whole or not at all)."""
    from orchestrator_data.offsite.fetch import fetch_dump

    settings = load_settings()
    fetched = fetch_dump(store_of(settings), settings.backup_dir, backup_id)
    output.info(f"{output.OK} dump {fetched} fetched into {settings.backup_dir / fetched} (sha256 verified)")
