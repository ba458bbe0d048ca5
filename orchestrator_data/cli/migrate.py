"""`orchestrator-data migrate up|status|rollback`: the same migrator the `postgres_schema` asset runs.

Exit codes: 0 done (or nothing to do), 1 the migration or a check failed (an edited revision, a
failed revision, the security check, an unreachable server), 2 refused before touching anything
(bad configuration, unknown revision, rollback in production without --confirm).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import load_settings, service_url
from orchestrator_data.errors import BadInput

app = typer.Typer(
    rich_markup_mode=None,
    help="Schema migrations: Alembic revisions under an advisory lock, checksummed in _migration_history.",
    no_args_is_help=True,
)


def _applied_table(report) -> Table:
    table = Table(title=f"{report.direction}: {report.start_revision or 'base'} → {report.end_revision or 'base'}",
                  title_justify="left")
    for column in ("", "revision", "description", "duration", "checksum"):
        table.add_column(column)
    for applied in report.applied:
        table.add_row(output.OK, applied.revision, applied.description, f"{applied.duration_ms} ms",
                      applied.checksum[:12])
    return table


def _print_report(report, nothing: str) -> None:
    if not report.applied:
        output.info(nothing)
    else:
        output.console.print(_applied_table(report))
    if report.lock_wait_ms >= 1000:
        output.info(f"waited {report.lock_wait_ms / 1000:.1f} s for another migration to finish")
    if report.security is not None:
        output.info(f"{output.OK} security check: row-level security forced, policies and audit triggers in place "
                    f"on {len(report.security.tables)} tables")


@app.command()
def up(
    to: Annotated[str, typer.Option("--to", help="Stop at this revision (default: the head).")] = "head",
) -> None:
    """Apply pending revisions (each in its own transaction) under the migration lock."""
    from orchestrator_data.postgres import migrator

    settings = load_settings()
    url = service_url(settings, "postgres")
    report = migrator.upgrade(url, target=to, before_each=_restore_point_maker(settings, url))
    _print_report(report, f"{output.OK} up to date at {report.end_revision or 'base'} (head {report.head})")
    recording.record(settings, "migrate up", lambda keys: [(keys.POSTGRES_SCHEMA, report)])


def _restore_point_maker(settings, url: str):
    """With the WAL archive on, a restore point `before-<revision>` before each migration applied, so "just
    before migration 0011" is a restore target (a revision applied again reuses the name: the newest wins)."""
    if settings.wal_archive_mode == "off":
        return None
    from orchestrator_data.recovery.layout import Layout
    from orchestrator_data.recovery.points import create_point
    from orchestrator_data.recovery.server import Primary

    def make(revision: str) -> None:
        point = create_point(Primary(url), Layout.from_settings(settings), f"before-{revision}", allow_reuse=True)
        output.info(f"restore point {point.name} at LSN {point.lsn}")

    return make


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Applied and pending revisions, with checksums and times. Exit 1 if an applied revision was edited."""
    from orchestrator_data.postgres import migrator

    state = migrator.status(service_url(load_settings(), "postgres"))
    if as_json:
        output.print_json(state.as_dict())
    else:
        table = Table(title=f"migrations: at {state.current or 'base'}, head {state.head}", title_justify="left")
        for column in ("", "revision", "state", "description", "checksum", "applied at", "duration", "by"):
            table.add_column(column)
        marks = {"applied": output.OK, "pending": "·", "edited": output.FAIL, "unrecorded": output.FAIL}
        for r in state.revisions:
            table.add_row(marks[r.state], r.revision, r.state, r.description, r.file_checksum[:12],
                          r.applied_at.isoformat(timespec="seconds") if r.applied_at else "-",
                          f"{r.duration_ms} ms" if r.duration_ms is not None else "-", r.applied_by or "-")
        output.console.print(table)
        failures = [h for h in state.history if not h.success]
        if failures:
            last = failures[0]
            output.info(f"last failed attempt: {last.direction} {last.revision} at "
                        f"{last.applied_at.isoformat(timespec='seconds')}: {last.error}")
    for problem in state.problems:
        output.error(f"revision {problem.revision} is {problem.state}: the file differs from what was applied"
                     if problem.state == "edited" else
                     f"revision {problem.revision} is applied but not recorded in the ledger")
    if state.problems:
        raise typer.Exit(1)


@app.command()
def rollback(
    revision: Annotated[str, typer.Argument(help="The revision to go back to ('base' removes everything).")],
    confirm: Annotated[bool, typer.Option("--confirm", help="Required in production.")] = False,
) -> None:
    """Downgrade until REVISION is the latest applied; each step is recorded in the ledger."""
    from orchestrator_data.postgres import migrator

    settings = load_settings()
    if settings.is_production and not confirm:
        raise BadInput(f"refusing to roll back the production database to {revision} without --confirm")
    report = migrator.rollback(service_url(settings, "postgres"), revision)
    _print_report(report, f"{output.OK} already at {report.end_revision or 'base'}: nothing to roll back")
