"""`orchestrator-data metrics collect`: one sample of the three servers into system_metrics, from a terminal.

Exit codes: 0 written; 1 a server could not be reached (the others' samples are still written) or the
samples could not be written (the index missing, a document refused, the index's lock busy); 2 bad
input (bad configuration, no URL and no local stack)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import clients, load_settings

app = typer.Typer(rich_markup_mode=None, help="The data layer's own figures (the system_metrics index).", no_args_is_help=True)


@app.command("collect")
def collect(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Sample PostgreSQL, Redis and Elasticsearch now and write the samples into system_metrics."""
    from orchestrator_data.metrics import collect_and_write
    from orchestrator_data.metrics.wal_archive import probe_of
    from orchestrator_data.metrics.writer import document

    settings = load_settings()
    with clients(settings, redis=True, search=True, application_name="orchestrator-data-metrics") as c:
        report = collect_and_write(c.engine, c.redis, c.es, c.layout, wal_archive=probe_of(settings, c.postgres_url))
    if as_json:
        output.print_json({
            "sampled_at": report.sampled_at.isoformat(), "headline": report.headline(), "errors": report.errors,
            "written": report.written.written, "already_present": report.written.already_present,
            "samples": [document(s, report.sampled_at) for s in report.samples]})
    else:
        table = Table(title=f"system metrics at {report.sampled_at.isoformat()}", title_justify="left")
        for column in ("figure", "value"):
            table.add_column(column)
        for key, value in report.headline().items():
            shown = output.human_bytes(value) if key.endswith("_bytes") else f"{value:,.3f}".rstrip("0").rstrip(".")
            table.add_row(key, shown)
        output.console.print(table)
        output.info(f"{report.written.written} samples written, {report.written.already_present} already there")
    for service, why in report.errors.items():
        output.error(f"{service}: no samples: {why}")
    if report.errors:  # as the asset: a run missing a server fails, it does not materialize
        raise typer.Exit(1)
    recording.record(settings, "metrics collect", lambda keys: [(keys.SYSTEM_METRICS, report)])
