"""`orchestrator-data seed run|clean`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data.cli import output, progress, recording
from orchestrator_data.cli.context import load_or_exit, resolve_or_exit
from orchestrator_data.connections import postgres_engine
from orchestrator_data.postgres.seed import DEFAULT_SCALE, SeedRefused, check_clean_allowed, clean, seed
from orchestrator_data.postgres.seed_data import SeedPlan

app = typer.Typer(help="Load or remove deterministic, realistic seed data.", no_args_is_help=True)

EnvironmentOption = Annotated[
    str | None,
    typer.Option("--environment", "-e", help="development or testing (default: ENVIRONMENT); production is refused."),
]


def _engine(settings):
    return postgres_engine(settings, resolve_or_exit(settings, "postgres"))


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
) -> None:
    """Seed organizations, users, roles, workflows with versions, months of executions and marketplace items.
    Deterministic (fixed random seed) and idempotent (a second run adds nothing)."""
    settings = load_or_exit()
    environment = environment or settings.environment.value
    try:
        plan = SeedPlan(executions=scale or DEFAULT_SCALE.get(environment, 0))
        engine = _engine(settings)
        with progress.shown() as shown:
            report = seed(engine, environment, plan, on_progress=shown)
    except SeedRefused as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - the transaction rolled back; say so and why
        output.error(f"seeding failed and was rolled back, nothing was written: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    engine.dispose()
    _print_report(report, "inserted")
    if report.total_inserted == 0:
        output.info("the seed was already loaded: nothing to add")
    recording.record(settings, "seed run", lambda keys: [(keys.SEED_DATA, report)])


@app.command("clean")
def clean_seed(
    confirm: Annotated[bool, typer.Option("--confirm", help="Required: seed clean deletes data.")] = False,
    environment: EnvironmentOption = None,
) -> None:
    """Remove every seeded organization and everything that belongs to it."""
    settings = load_or_exit()
    environment = environment or settings.environment.value
    try:
        check_clean_allowed(environment, confirm)
        engine = _engine(settings)
        report = clean(engine, environment, confirm=True)
    except SeedRefused as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001
        output.error(f"seed clean failed and was rolled back: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    engine.dispose()
    _print_report(report, "deleted")
    recording.record(settings, "seed clean", lambda keys: [(keys.SEED_DATA, report)])
