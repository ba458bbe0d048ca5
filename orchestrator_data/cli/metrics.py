"""`orchestrator-data metrics collect`: one sample of the three servers into system_metrics, from a terminal.

Exit codes: 0 written; 1 a server could not be reached (the others' samples are still written) or the
samples could not be written (the index missing, a document refused, the index's lock busy); 2 bad
input (bad configuration, no URL and no local stack)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data import connections
from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import load_or_exit, resolve_or_exit
from orchestrator_data.metrics import MetricsError, collect_and_write
from orchestrator_data.metrics.writer import document
from orchestrator_data.search.errors import SearchError
from orchestrator_data.search.indices import layout_of

app = typer.Typer(help="The data layer's own figures (the system_metrics index).", no_args_is_help=True)


@app.command("collect")
def collect(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Sample PostgreSQL, Redis and Elasticsearch now and write the samples into system_metrics."""
    settings = load_or_exit()
    urls = {service: resolve_or_exit(settings, service) for service in ("postgres", "redis", "elasticsearch")}
    engine = connections.postgres_engine(settings, urls["postgres"], application_name="orchestrator-data-metrics")
    redis_client = connections.redis_client(settings, urls["redis"])
    es_client = connections.elasticsearch_client(settings, urls["elasticsearch"])
    try:
        report = collect_and_write(engine, redis_client, es_client, layout_of(settings))
    except (MetricsError, SearchError) as exc:
        output.error(str(exc))
        raise typer.Exit(1) from None
    finally:
        es_client.close()
        redis_client.close()
        engine.dispose()
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
    recording.record(settings, "metrics collect", lambda: [_metrics_record(report)])


def _metrics_record(report) -> tuple[str, dict]:
    from assets.metrics import metrics_metadata

    return "system_metrics", metrics_metadata(report)
