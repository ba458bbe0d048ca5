"""`orchestrator-data seed run|clean`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import clients, describe_failure, load_settings
from orchestrator_data.errors import BadInput, OperationFailed

app = typer.Typer(help="Load or remove deterministic, realistic seed data.", no_args_is_help=True)

SkipSearch = Annotated[bool, typer.Option(
    "--skip-search", help="Leave the search indices as they are (the next search sync rebuilds them).")]
EnvironmentOption = Annotated[
    str | None,
    typer.Option("--environment", "-e", help="development or testing (default: ENVIRONMENT); production is refused."),
]


def _bring_search_in_line(settings, skip: bool) -> None:
    """The seed wrote rows behind the audit trail (and marked it so): sync every existing index now, which
    rebuilds each from PostgreSQL, so that search is equal to the database when the command ends."""
    if skip:
        output.info("- search     skipped: the next `orchestrator-data search sync` rebuilds the indices")
        return
    from orchestrator_data.cli import progress
    from orchestrator_data.search import sync

    with clients(settings, search="optional", application_name="orchestrator-data-search") as c:
        if c.es is None:
            output.info("- search     not configured: nothing to bring in line")
            return
        try:
            with progress.shown() as shown:
                reports = sync.sync_existing(c.engine, c.es, c.layout, on_progress=lambda r: shown(
                    f"{r.index} ({r.mode})", r.rows_read, None, "rows"))
        except Exception as exc:  # noqa: BLE001 - the seed itself is committed: say so, and what repairs search
            raise OperationFailed(f"the seed is committed, but search could not be brought in line: "
                                  f"{describe_failure(exc)}; run `orchestrator-data search sync`") from exc
    if not reports:
        output.info("- search     no index yet (`orchestrator-data search init` creates them)")
    for r in reports:
        output.info(f"{output.OK} search     {r.index:<12} {r.mode:<11} {r.documents_written:>9,} written, "
                    f"equal to PostgreSQL")


def _print_report(report, verb: str) -> None:
    table = Table(title=f"{verb} in {report.duration_s:.2f} s", title_justify="left")
    table.add_column("table")
    table.add_column(verb, justify="right")
    counts = report.inserted if verb == "inserted" else report.deleted
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    output.console.print(table)
    if report.copy_rows_per_s:
        output.info(f"executions loaded through COPY at {report.copy_rows_per_s:,.0f} rows/s")


@app.command("run")
def run_seed(
    environment: EnvironmentOption = None,
    scale: Annotated[int | None, typer.Option("--scale", min=1, max=50_000_000,
                                              help="Number of executions (default: 20,000 development, 2,000 testing).")] = None,
    skip_search: SkipSearch = False,
) -> None:
    """Seed organizations, users, roles, workflows with versions, months of executions and marketplace items.
    Deterministic (fixed random seed) and idempotent (a second run adds nothing). Then brings every existing
    search index in line with the seeded rows (unless --skip-search)."""
    from orchestrator_data.cli import progress
    from orchestrator_data.postgres.seed import DEFAULT_SCALE, seed
    from orchestrator_data.postgres.seed_data import SeedPlan

    settings = load_settings()
    environment = environment or settings.environment.value
    plan = SeedPlan(executions=scale or DEFAULT_SCALE.get(environment, 0))
    with clients(settings) as c, progress.shown() as shown:
        try:
            report = seed(c.engine, environment, plan, on_progress=shown)
        except BadInput:
            raise  # refused (production, an unknown environment): nothing was tried
        except Exception as exc:  # noqa: BLE001 - the transaction rolled back: the line says so
            raise OperationFailed(f"seeding failed and was rolled back, nothing was written: "
                                  f"{describe_failure(exc)}") from exc
    _print_report(report, "inserted")
    if report.total_inserted == 0:
        output.info("the seed was already loaded: nothing to add")
    recording.record(settings, "seed run", lambda keys: [(keys.SEED_DATA, report)])
    _bring_search_in_line(settings, skip_search)


@app.command("clean")
def clean_seed(
    confirm: Annotated[bool, typer.Option("--confirm", help="Required: seed clean deletes data.")] = False,
    environment: EnvironmentOption = None,
    skip_search: SkipSearch = False,
) -> None:
    """Remove every seeded organization and everything that belongs to it, then bring every existing search
    index in line (unless --skip-search)."""
    from orchestrator_data.postgres.seed import check_clean_allowed, clean

    settings = load_settings()
    environment = environment or settings.environment.value
    check_clean_allowed(environment, confirm)
    with clients(settings) as c:
        try:
            report = clean(c.engine, environment, confirm=True)
        except BadInput:
            raise
        except Exception as exc:  # noqa: BLE001 - the transaction rolled back: the line says so
            raise OperationFailed(f"seed clean failed and was rolled back: {describe_failure(exc)}") from exc
    _print_report(report, "deleted")
    recording.record(settings, "seed clean", lambda keys: [(keys.SEED_DATA, report)])
    _bring_search_in_line(settings, skip_search)
