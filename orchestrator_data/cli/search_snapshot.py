"""`orchestrator-data search snapshot create|list|restore-check|prune`: Elasticsearch snapshots of the
search indices, from a terminal.

Exit codes: 0 done (restore check passed); 1 a restore check failed, or the cluster or PostgreSQL
failed; 2 bad input (an unknown snapshot, a SEARCH_SNAPSHOT_LOCATION outside the nodes' path.repo,
bad configuration)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import Clients, clients, load_settings

app = typer.Typer(rich_markup_mode=None, help="Snapshots of the search indices: create, list, restore-check, prune.", no_args_is_help=True)


@contextmanager
def _snapshot_clients(postgres: bool = True) -> Iterator[tuple[Clients, Any]]:
    """The clients and the snapshot repository (an unknown snapshot, an unusable repository location:
    BadInput, exit 2)."""
    from orchestrator_data.search import snapshots

    with clients(load_settings(), postgres=postgres, search=True, application_name="orchestrator-data-search") as c:
        yield c, snapshots.repository_of(c.settings, c.layout)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@app.command("create")
def create() -> None:
    """Snapshot every index (waits for a running sync of an index to finish; the counts recorded in the
    snapshot are exact)."""
    from orchestrator_data.search import snapshots

    with _snapshot_clients() as (c, repository):
        info = snapshots.create_snapshot(c.engine, c.es, c.layout, repository)
    output.info(f"{output.OK} snapshot {info.name} in {repository.name}: {len(info.indices)} indices, "
                f"{info.documents:,} documents, {output.human_bytes(info.size_bytes)}, {info.duration_s or 0:.1f} s")
    recording.record(c.settings, "search snapshot create", lambda keys: [(keys.SEARCH_SNAPSHOT, info)])


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The snapshots, oldest first, with state, documents, size and their latest restore check."""
    from orchestrator_data.search import snapshots

    with _snapshot_clients() as (c, repository):
        found = snapshots.list_snapshots(c.es, repository, c.layout, c.engine)
    if as_json:
        output.print_json({"repository": repository.name, "location": repository.location,
                           "snapshots": [s.as_dict() for s in found]})
        return
    table = Table(title=f"snapshots in {repository.name} ({repository.location})", title_justify="left")
    for column in ("snapshot", "state", "started (UTC)", "duration", "indices", "documents", "size", "restore check"):
        table.add_column(column)
    for s in found:
        check = s.restore_check
        checked = "-" if check is None else f"{output.OK if check.ok else output.FAIL} {_when(check.checked_at)}"
        table.add_row(s.name, s.state, _when(s.started_at), "-" if s.duration_s is None else f"{s.duration_s:.1f} s",
                      str(len(s.indices)), f"{s.documents:,}", output.human_bytes(s.size_bytes), checked)
    output.console.print(table)
    for s in found:
        if s.state == snapshots.BROKEN:
            output.info(f"{output.FAIL} {escape(s.name)} is broken: {escape(s.problem or '')}; it cannot be restored "
                        f"(`search snapshot prune` deletes it)")


@app.command("restore-check")
def restore_check(
    snapshot: Annotated[str, typer.Argument(
        help="A snapshot name, or 'latest' (the newest successful one that can be read).")] = "latest",
) -> None:
    """Restore a snapshot into renamed indices, compare counts and a sample of documents with the live
    ones, record the result, delete the copies. Exit 1 when the check fails."""
    from orchestrator_data.search import snapshot_checks

    with _snapshot_clients() as (c, repository):
        result = snapshot_checks.restore_check(c.engine, c.es, c.layout, repository, snapshot)
    table = Table(title=f"restore check of {result.snapshot}", title_justify="left")
    for column in ("", "index", "recorded", "restored", "live", "sampled", "equal", "changed since"):
        table.add_column(column)
    for checked in result.indices:
        table.add_row(output.OK if checked.ok else output.FAIL, checked.index, f"{checked.recorded:,}",
                      f"{checked.restored:,}", f"{checked.live:,}", str(checked.sampled), str(checked.equal),
                      str(checked.changed))
    output.console.print(table)
    if not result.ok:
        for problem in result.problems[:10]:
            output.error(problem)
        raise typer.Exit(1)
    output.info(f"{output.OK} {result.snapshot} restores: restored in {result.restore_duration_s:.1f} s, checked in "
                f"{result.duration_s:.1f} s; the restored copies are deleted")
    recording.record(c.settings, "search snapshot restore-check", lambda keys: [(keys.SEARCH_SNAPSHOT_RESTORE_CHECK, result)])


@app.command("prune")
def prune(
    keep: Annotated[int | None, typer.Option("--keep", min=1, help="Successful snapshots to keep "
                                                                   "(default SEARCH_SNAPSHOT_KEEP).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")] = False,
) -> None:
    """Keep the newest N successful snapshots; delete older ones, broken ones (their files unreadable), and
    failed or partial ones older than the newest success. Never the newest success, never one in progress."""
    from orchestrator_data.search import snapshots

    with _snapshot_clients(postgres=False) as (c, repository):
        report = snapshots.prune(c.es, repository, c.layout, keep or c.settings.search_snapshot_keep, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for name in report.deleted:
        output.info(f"{verb} {name}")
    output.info(f"{output.OK} {len(report.deleted)} snapshot(s) {verb}, {len(report.kept)} kept")
