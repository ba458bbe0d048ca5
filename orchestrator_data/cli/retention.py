"""`orchestrator-data retention run|show`: purge what the retention policies say, or show the policies.

Exit codes: 0 done (or nothing to purge); 1 PostgreSQL or Elasticsearch failed (the batches already
committed stay purged; a rerun continues); 2 refused before anything was deleted (a malformed policy
file, bad configuration, production without --confirm)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import clients, load_settings

app = typer.Typer(rich_markup_mode=None, help="Data retention: purge rows past their policy (executions, audit rows, soft-deleted rows), "
                       "show the policies.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("run")
def run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be purged; delete nothing.")] = False,
    confirm: Annotated[bool, typer.Option("--confirm", help="Required to purge in production.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Purge every table's rows past its policy, in bounded batches: per table, the horizon, the rows past
    it, the rows purged and the batches."""
    from orchestrator_data.retention import policies as retention_policies
    from orchestrator_data.retention.purge import check_purge_allowed, purge
    from orchestrator_data.retention.search import audit_document_deleter

    settings = load_settings()
    policies = retention_policies.policies_of(settings)  # InvalidRetentionPolicy: refused before any delete
    check_purge_allowed(settings.is_production, dry_run, confirm)
    # no search cluster: no audit index to keep in step
    with clients(settings, search="optional", application_name="orchestrator-data-retention") as c:
        deleter = audit_document_deleter(c.es, c.layout) if c.es is not None else None
        report = purge(c.engine, policies, dry_run=dry_run, production=settings.is_production, confirm=confirm,
                       delete_documents=deleter)
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
    from orchestrator_data.retention import policies as retention_policies

    policies = retention_policies.policies_of(load_settings())
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
