"""`orchestrator-data gdpr export|erase`: everything held about one person, and its erasure.

Exit codes: 0 done; 1 a server failed, or part of the erasure (Redis, search) still failed after its
retries — the report says which and running the same command again completes it; 2 refused before
anything changed: a malformed user id, no such user, erase without --confirm, bad configuration;
3 the user was already erased (nothing changed in PostgreSQL; Redis and search were cleaned again)."""

from __future__ import annotations

import getpass
import socket
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated

import typer

from orchestrator_data import connections, gdpr
from orchestrator_data.cli import output
from orchestrator_data.cli.context import load_or_exit, resolve_or_exit
from orchestrator_data.connections import ServiceNotConfigured
from orchestrator_data.gdpr import erase as gdpr_erase
from orchestrator_data.gdpr import export as gdpr_export
from orchestrator_data.search.indices import layout_of
from orchestrator_data.stack.common import write_atomically

app = typer.Typer(help="GDPR: export everything held about a person, or erase it.", no_args_is_help=True)

ALREADY_ERASED_EXIT = 3
UserOption = Annotated[str, typer.Option("--user", help="The user's id (a UUID).")]
RequestedBy = Annotated[str | None, typer.Option(
    "--requested-by", help="Who asks, for the audit trail (default: your login @ this host).")]


def default_requester() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@contextmanager
def _clients():
    """(engine, redis or None, elasticsearch or None, layout). Redis and Elasticsearch are optional:
    one that is not configured is left out of the export or erasure, and the report says so."""
    settings = load_or_exit()
    engine = connections.postgres_engine(settings, resolve_or_exit(settings, "postgres"),
                                         application_name="orchestrator-data-gdpr")
    redis_client = search_client = None
    with suppress(ServiceNotConfigured):
        redis_client = connections.redis_client(settings, connections.resolve_url("redis", settings))
    with suppress(ServiceNotConfigured):
        search_client = connections.elasticsearch_client(settings, connections.resolve_url("elasticsearch", settings))
    try:
        yield settings, engine, redis_client, search_client, layout_of(settings)
    except typer.Exit:
        raise
    except gdpr.GdprError as exc:  # malformed id, unknown user: nothing was changed
        output.error(str(exc))
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - a server failed: one line, no traceback
        from orchestrator_data.postgres.migrator import describe_error

        output.error(describe_error(exc))
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
        if search_client is not None:
            with suppress(Exception):
                search_client.close()
        if redis_client is not None:
            with suppress(Exception):
                redis_client.close()


@app.command("export")
def export(
    user: UserOption,
    output_file: Annotated[Path | None, typer.Option("--output", help="Write the JSON here (mode 0600) "
                                                     "instead of standard output.")] = None,
    requested_by: RequestedBy = None,
) -> None:
    """One JSON document (docs/gdpr.md) with everything held about the user; the export is audited."""
    user_id = _valid(user)
    with _clients() as (settings, engine, redis_client, search_client, layout):
        document = gdpr_export.export_user(engine, redis_client, search_client, layout, user_id,
                                           requested_by or default_requester())
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
    user_id = _valid(user)
    if not confirm:
        output.error(f"refusing to erase user {user_id} without --confirm: it cannot be undone")
        raise typer.Exit(2)
    with _clients() as (settings, engine, redis_client, search_client, layout):
        report = gdpr_erase.erase_user(engine, redis_client, search_client, layout, user_id,
                                       requested_by or default_requester())
    if as_json:
        output.print_json(report.as_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)
    if report.already_erased:
        raise typer.Exit(ALREADY_ERASED_EXIT)


def _valid(user: str) -> str:
    try:
        return str(gdpr.user_id(user))
    except gdpr.InvalidUserId as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None


def _print_report(report: gdpr_erase.ErasureReport) -> None:
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
