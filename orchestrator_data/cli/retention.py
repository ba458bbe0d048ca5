"""`orchestrator-data retention run|show`: purge what the retention policies say, or show the policies.

Exit codes: 0 done (or nothing to purge); 1 PostgreSQL or Elasticsearch failed (the batches already
committed stay purged; a rerun continues); 2 refused before anything was deleted (a malformed policy
file, bad configuration, production without --confirm)."""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data import connections
from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import load_or_exit, resolve_or_exit
from orchestrator_data.connections import ServiceNotConfigured
from orchestrator_data.retention import policies as retention_policies
from orchestrator_data.retention.purge import RetentionRefused, purge
from orchestrator_data.retention.search import audit_document_deleter
from orchestrator_data.search.indices import layout_of

app = typer.Typer(help="Data retention: purge rows past their policy (executions, audit rows, soft-deleted rows), "
                       "show the policies.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _policies_or_exit(settings) -> dict[str, retention_policies.RetentionPolicy]:
    try:
        return retention_policies.policies_of(settings)
    except retention_policies.InvalidRetentionPolicy as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None


@app.command("run")
def run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be purged; delete nothing.")] = False,
    confirm: Annotated[bool, typer.Option("--confirm", help="Required to purge in production.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Purge every table's rows past its policy, in bounded batches: per table, the horizon, the rows past
    it, the rows purged and the batches."""
    settings = load_or_exit()
    policies = _policies_or_exit(settings)
    if settings.is_production and not dry_run and not confirm:
        output.error("refusing to purge production data without --confirm (--dry-run shows what would go)")
        raise typer.Exit(2)
    engine = connections.postgres_engine(settings, resolve_or_exit(settings, "postgres"),
                                         application_name="orchestrator-data-retention")
    client = None
    try:
        with suppress(ServiceNotConfigured):  # no search cluster: no audit index to keep in step
            client = connections.elasticsearch_client(settings, connections.resolve_url("elasticsearch", settings))
        deleter = audit_document_deleter(client, layout_of(settings)) if client is not None else None
        report = purge(engine, policies, dry_run=dry_run, production=settings.is_production, confirm=confirm,
                       delete_documents=deleter)
    except RetentionRefused as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - e.g. PostgreSQL unreachable: one line, no traceback
        from orchestrator_data.postgres.migrator import describe_error

        output.error(describe_error(exc))
        raise typer.Exit(1) from None
    finally:
        if client is not None:
            with suppress(Exception):
                client.close()
        engine.dispose()
    if not dry_run:
        recording.record(settings, "retention run", lambda keys: [(keys.RETENTION_PURGE, report)])
    if as_json:
        output.print_json(report.as_dict())
        return
    table = Table(title=f"retention{' (dry run)' if dry_run else ''}", title_justify="left")
    for column in ("table", "delete after", "horizon", "past horizon", "purged", "batches", "kept for sync",
                   "search docs deleted", "action"):
        table.add_column(column)
    for t in report.tables:
        table.add_row(t.table, t.delete_after or "never", t.horizon.strftime("%Y-%m-%d %H:%M:%S") if t.horizon else "-",
                      f"{t.eligible:,}", f"{t.purged:,}", str(t.batches), f"{t.kept_for_sync:,}",
                      f"{t.search_documents_deleted:,}", t.action)
    output.console.print(table)
    output.info(f"{'would purge' if dry_run else 'purged'} "
                f"{sum(t.eligible for t in report.tables) if dry_run else report.rows_purged:,} rows "
                f"in {report.duration_s:.1f}s")


@app.command("show")
def show(as_json: JsonOption = False) -> None:
    """Each table's policy, what it purges, and the file it comes from (RETENTION_POLICY_DIR replaces the
    package's)."""
    settings = load_or_exit()
    policies = _policies_or_exit(settings)
    if as_json:
        output.print_json({t: {"delete_after": p.delete_after, "batch_size": p.batch_size, "purges": p.target.what,
                               "age_column": p.target.age_column, "source": p.source} for t, p in policies.items()})
        return
    table = Table(title="retention policies", title_justify="left")
    for column in ("table", "purges", "delete after", "batch size", "file"):
        table.add_column(column)
    for p in policies.values():
        table.add_row(p.table, p.target.what, p.delete_after or "never", str(p.batch_size), p.source)
    output.console.print(table)
