"""`orchestrator-data gdpr export|erase|reapply`: everything held about one person, its erasure, and
the erasures re-applied to a database that went back in time.

Exit codes: 0 done; 1 a server failed, or part of the erasure (Redis, search) still failed after its
retries — the report says which and running the same command again completes it; 2 refused before
anything changed: a malformed user id, no such user, erase without --confirm, bad configuration, a
database without the erasure function (reapply); 1 also: the erasure ledger file cannot be written
(nothing committed), or has unreadable lines (reapply);
3 the user was already erased (nothing changed in PostgreSQL; Redis and search were cleaned again)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator_data.cli import output
from orchestrator_data.cli.context import clients, load_settings
from orchestrator_data.errors import BadInput

app = typer.Typer(rich_markup_mode=None, help="GDPR: export everything held about a person, or erase it.", no_args_is_help=True)

ALREADY_ERASED_EXIT = 3
UserOption = Annotated[str, typer.Option("--user", help="The user's id (a UUID).")]
RequestedBy = Annotated[str | None, typer.Option(
    "--requested-by", help="Who asks, for the audit trail (default: your login @ this host).")]


def default_requester() -> str:
    import getpass
    import socket

    return f"{getpass.getuser()}@{socket.gethostname()}"


def _gdpr_clients():
    """PostgreSQL, and Redis and Elasticsearch where configured: one that is not is left out of the
    export or erasure, and the report says so."""
    return clients(load_settings(), redis="optional", search="optional", application_name="orchestrator-data-gdpr")


def checked_output(path: Path) -> Path:
    """`path`, once it is sure the export can be written there: its folder exists and takes a new
    file. Checked before the export runs, so a refused path leaves neither an audit row nor a file
    (nor a folder: none is created)."""
    import tempfile

    folder = path.parent
    if path.is_dir():
        raise BadInput(f"--output {path} is a folder: name a file in it")
    if not folder.exists():
        raise BadInput(f"--output {path}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise BadInput(f"--output {path}: {folder} is not a folder")
    try:  # a real new file, removed at once: permissions alone do not tell (root, read-only mounts)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise BadInput(f"--output {path}: the folder {folder} is not writable "
                       f"({exc.strerror or type(exc).__name__})") from None
    return path


@app.command("export")
def export(
    user: UserOption,
    output_file: Annotated[Path | None, typer.Option("--output", help="Write the JSON here (mode 0600) "
                                                     "instead of standard output.")] = None,
    requested_by: RequestedBy = None,
) -> None:
    """One JSON document (docs/gdpr.md) with everything held about the user; the export is audited."""
    from orchestrator_data.gdpr import export as gdpr_export
    from orchestrator_data.stack.common import write_atomically

    user_id = _valid(user)
    if output_file is not None:
        checked_output(output_file)
    with _gdpr_clients() as c:
        read_engine = None
        if c.settings.database_read_url:  # the rows from a standby; the audit row still goes to the primary
            from orchestrator_data.connections import postgres_read_engine

            read_engine = postgres_read_engine(c.settings, application_name="orchestrator-data-gdpr")
        try:
            document = gdpr_export.export_user(c.engine, c.redis, c.es, c.layout, user_id,
                                               requested_by or default_requester(), read_engine=read_engine)
        finally:
            if read_engine is not None:
                read_engine.dispose()
    text = gdpr_export.to_json(document)
    if output_file is None:
        output.console.file.write(text)
        return
    write_atomically(output_file, text)
    output.note(f"export of user {user_id} written to {output_file} (audit row {document['audit_row_id']})")


@app.command("erase")
def erase(
    user: UserOption,
    confirm: Annotated[bool, typer.Option("--confirm", help="Required: the erasure cannot be undone.")] = False,
    requested_by: RequestedBy = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Delete the user and their personal data in PostgreSQL (one transaction; recorded in the erasure
    ledger), revoke their sessions and cached data in Redis, and rewrite their search documents."""
    from orchestrator_data.gdpr import erase as gdpr_erase
    from orchestrator_data.gdpr.ledger import ErasureLedger

    user_id = _valid(user)
    if not confirm:
        raise BadInput(f"refusing to erase user {user_id} without --confirm: it cannot be undone")
    ledger = ErasureLedger(load_settings().gdpr_ledger_path)
    with _gdpr_clients() as c:
        report = gdpr_erase.erase_user(c.engine, c.redis, c.es, c.layout, user_id,
                                       requested_by or default_requester(), ledger=ledger)
    if as_json:
        output.print_json(report.as_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)
    if report.already_erased:
        raise typer.Exit(ALREADY_ERASED_EXIT)


@app.command("reapply")
def reapply(
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="The database to erase in again (default: DATABASE_URL, or the local stack's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Erase again everyone the erasure ledger file (GDPR_LEDGER_FILE) names who is present in the
    database: run it after a restore or a point-in-time recovery. Idempotent."""
    from orchestrator_data import urls
    from orchestrator_data.cli.context import service_url
    from orchestrator_data.gdpr.reapply import reapply_erasures

    settings = load_settings()
    try:
        url = urls.validate_postgres_url(database_url) if database_url else service_url(settings, "postgres")
    except urls.InvalidUrl as exc:
        raise BadInput(f"--database-url {exc}") from None
    report = reapply_erasures(settings, url)
    if as_json:
        output.print_json(report.as_dict())
    elif not report.ledger_exists:
        output.info(f"no erasure ledger at {report.ledger_file}: nothing to re-apply")
    else:
        output.info(f"{output.OK} {report.entries} erasure(s) in {report.ledger_file}; {len(report.erased)} person(s) "
                    f"present in the database erased again" + (f": {', '.join(report.erased)}" if report.erased else ""))
        if report.rows:
            output.info("  rows: " + ", ".join(f"{table} {n}" for table, n in report.rows.items()))
    if report.unreadable_lines:
        output.error(f"{len(report.unreadable_lines)} unreadable line(s) in {report.ledger_file} were skipped: "
                     f"lines {', '.join(map(str, report.unreadable_lines[:20]))}")
        raise typer.Exit(1)


def _valid(user: str) -> str:
    from orchestrator_data import gdpr

    return str(gdpr.user_id(user))  # InvalidUserId: BadInput


def _print_report(report) -> None:
    if report.already_erased:
        output.error(f"user {report.user_id} was already erased: nothing changed in PostgreSQL")
    else:
        rows = ", ".join(f"{table} {n}" for table, n in report.postgres.items())
        output.info(f"{output.OK} postgres: {rows}")
    for system, part in (("redis", report.redis), ("search", report.search)):
        if system in report.errors:
            output.info(f"{output.FAIL} {system}: {report.errors[system]}")
        elif part is None:
            output.info(f"- {system}: not configured, skipped")
        else:
            output.info(f"{output.OK} {system}: " + ", ".join(f"{k} {v}" for k, v in part.items()))
    output.note(f"erasure of user {report.user_id} took {report.duration_s:.1f} s")
