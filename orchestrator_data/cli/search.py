"""`orchestrator-data search init|sync|load|status|reindex|repair|query|rollover|retention|lifecycle`: the
search indices from a terminal.

Exit codes: 0 done; 1 the cluster or PostgreSQL failed (unreachable, a sync that could not finish —
its watermark stays where it was); 2 bad input (unknown index, bad organization id, bad configuration,
no URL and no local stack)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data.cli import output, recording, search_snapshot
from orchestrator_data.cli.choices import PARTITIONED_INDICES, SEARCH_INDICES, SYNCED_INDICES
from orchestrator_data.cli.context import Clients, clients, load_settings
from orchestrator_data.errors import BadInput

app = typer.Typer(rich_markup_mode=None, help="Search indices: init, sync from PostgreSQL, status, reindex, repair, query, rollover, "
                       "retention, lifecycle policies.", no_args_is_help=True)
lifecycle_app = typer.Typer(rich_markup_mode=None, help="The lifecycle policies: show them, or export them as ILM policies.",
                            no_args_is_help=True)
app.add_typer(lifecycle_app, name="lifecycle")
IndexName = Annotated[str, typer.Argument(help=f"One of: {', '.join(SYNCED_INDICES)}.")]

IndexOption = Annotated[list[str] | None, typer.Option(
    "--index", help=f"Only this index (repeatable): {', '.join(SEARCH_INDICES)}.")]
# the CLI takes a month as YYYY-MM only (the core also reads Dagster's partition keys, YYYY-MM-01)
MONTH = re.compile(r"^\d{4}-\d{2}$")


@contextmanager
def search_clients(postgres: bool = True) -> Iterator[Clients]:
    """The settings' Elasticsearch client, layout and (unless postgres=False) PostgreSQL engine."""
    with clients(load_settings(), postgres=postgres, search=True, application_name="orchestrator-data-search") as c:
        yield c


def _names(given: list[str] | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The indices named (all of `allowed` when none), each checked before any server is asked."""
    names = tuple(given or allowed)
    for name in names:
        if name not in SEARCH_INDICES:
            raise BadInput(f"unknown index '{name}'; known: {', '.join(SEARCH_INDICES)}")
        if name not in allowed:
            raise BadInput(f"index '{name}' is not synced from PostgreSQL; synced: {', '.join(allowed)}")
    return names


def _month(value: str) -> str:
    if not MONTH.match(value.strip()):
        raise BadInput(f"--month '{value}' is not a month: use YYYY-MM, e.g. 2024-03")
    return value.strip()


@app.command("init")
def init(index: IndexOption = None) -> None:
    """Create the templates, indices and aliases (idempotent: what exists is left alone)."""
    from orchestrator_data.search import sync

    names = _names(index, SEARCH_INDICES)
    with search_clients() as c:
        settings = c.settings
        results = sync.create_indices(c.engine, c.es, c.layout, names, shards=settings.search_shards,
                               replicas=settings.search_replicas)
    for r in results:
        what = "created" if r.created else "exists"
        note = " (the definition has a newer mapping version: reindex to apply it)" if r.needs_reindex else ""
        output.info(f"{output.OK} {r.name:<15} {what:<8} {r.read_alias} → {r.write_index} "
                    f"(mapping v{r.mapping_version}){note}")
    recording.record(settings, "search init", lambda keys: [(keys.index_key(made.name), made) for made in results])


@app.command("sync")
def sync_(
    full: Annotated[bool, typer.Option("--full", help="Reload every row, not only what changed.")] = False,
    index: IndexOption = None,
) -> None:
    """Bring the indices up to date with PostgreSQL (incremental unless --full or never synced)."""
    from orchestrator_data.cli import progress
    from orchestrator_data.search import sync

    from orchestrator_data.timeline_change import follow_timeline

    names = _names(index, SYNCED_INDICES)
    with search_clients() as c, progress.shown() as report:
        # after a failover: search and Redis brought in line with the new primary first (once per failover)
        changed = follow_timeline(c.settings, c.engine, c.es, c.layout)
        if changed is not None:
            output.note(changed.describe())
        reports = sync.sync(c.engine, c.es, c.layout, names, full=full,
                            on_progress=lambda r: report(f"{r.index} ({r.mode})", r.rows_read, None, "rows"))
    recording.record(c.settings, "search sync", lambda keys: [(keys.documents_key(r.index), r) for r in reports])
    for r in reports:
        output.info(f"{output.OK} {r.index:<12} {r.mode:<11} {r.documents_written:>9,} written "
                    f"{r.documents_deleted:>7,} deleted {r.stale_skipped:>7,} already current "
                    f"{r.documents_per_s:>9,.0f} docs/s  watermark {r.watermark_from} → {r.watermark_to}")


@app.command("load")
def load(
    index: Annotated[str, typer.Argument(help=f"One of: {', '.join(PARTITIONED_INDICES)}.")],
    month: Annotated[str, typer.Option("--month", help="The partition, YYYY-MM (UTC): from SEARCH_PARTITIONS_START "
                                                       "(which also loads every older row) to the current month "
                                                       "(every later row).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Load one month of an index in full (the same code as search_full_load_job's partitions): versions
    from the rows, so running it again writes nothing new. Never moves the sync's watermark."""
    from orchestrator_data.cli import progress
    from orchestrator_data.search import full_load

    # bad input is refused before any server is asked
    _names([index], SYNCED_INDICES)
    settings = load_settings()
    full_load.partitioned_source(index)
    part = full_load.partition(_month(month), settings.search_partitions_start)
    with search_clients() as c, progress.shown() as report:
        shown = None if as_json else (lambda r: report(f"{index} {part.key}", r.rows_read, None, "rows"))  # stdout: JSON only
        done = full_load.load_partition(c.engine, c.es, c.layout, index, part, on_progress=shown)
    recording.record(settings, "search load", lambda keys: [(keys.full_load_key(index), done)], partition=done.partition)
    if as_json:
        output.print_json(done.as_dict())
        return
    output.info(f"{output.OK} {index} {done.partition}: {done.rows_read:,} rows, {done.documents_written:,} written, "
                f"{done.already_current:,} already current, {done.documents_per_s:,.0f} docs/s, "
                f"{done.duration_s:.1f} s, into {', '.join(done.written_to) or '-'} (snapshot xmin {done.snapshot_xmin})")


@app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Per index: alias, backing indices, mapping version, documents, PostgreSQL rows, lag and state (in step,
    behind, rebuild pending, differs: documents and rows per organization compared). Exit 1 when an index is
    missing or differs from PostgreSQL."""
    from orchestrator_data.search import lifecycle
    from orchestrator_data.search import status as search_status

    with search_clients() as c:
        layout = c.layout
        reports = search_status.search_status(c.engine, c.es, layout)
        ilm = lifecycle.ilm_status(c.es)
    if as_json:
        output.print_json(search_status.as_json(reports) | {"ilm": {"available": ilm is not None, "status": ilm}})
    else:
        table = Table(title=f"search indices ({layout.prefix}-*)", title_justify="left")
        for column in ("index", "alias", "backing", "mapping", "documents", "postgres rows", "lag rows", "lag",
                       "size", "state"):
            table.add_column(column)
        for r in reports:
            state = "-" if r.state is None else (f"[red]{r.state}[/red]" if r.state == search_status.State.DIFFERS
                                                 else str(r.state))
            table.add_row(r.name, r.alias if r.exists else "[red]missing[/red]", str(len(r.backing_indices)),
                          f"v{r.mapping_version}" if r.mapping_version else "-", f"{r.documents:,}",
                          "-" if r.postgres_rows is None else f"{r.postgres_rows:,}",
                          "-" if r.lag_rows is None else f"{r.lag_rows:,}",
                          "-" if r.lag_seconds is None else f"{r.lag_seconds:.0f} s", output.human_bytes(r.size_bytes),
                          state)
        output.console.print(table)
        for r in reports:
            if r.state not in (None, search_status.State.IN_STEP):
                output.info(f"{r.name}: {r.describe()}")
        output.info(_ilm_line(ilm))
    if not all(r.exists for r in reports) or any(r.state == search_status.State.DIFFERS for r in reports):
        raise typer.Exit(1)


def _ilm_line(ilm: str | None) -> str:
    if ilm is None:
        return ("lifecycle: this cluster has no ILM; rollover and retention run from Dagster (search_lifecycle_job) "
                "or `orchestrator-data search rollover|retention`")
    return (f"lifecycle: this cluster has ILM ({ilm}); orchestrator-data still runs the policies itself, and "
            f"`orchestrator-data search lifecycle export` prints them as ILM policies")


@app.command("reindex")
def reindex(index: IndexName) -> None:
    """Rebuild an index with its current mapping beside the live one, catch up, swap the aliases atomically."""
    from orchestrator_data.cli import progress
    from orchestrator_data.search import reindex as search_reindex

    [name] = _names([index], SYNCED_INDICES)
    with search_clients() as c, progress.shown() as report:
        done = search_reindex.reindex(c.engine, c.es, c.layout, name, on_progress=(
            lambda r: report(f"{name} (reindex)", r.rows_read, None, "rows")))
    output.info(f"{output.OK} {name}: {', '.join(done.old_indices)} → {done.new_index} (mapping v{done.mapping_version}), "
                f"{done.documents:,} documents, {done.catch_up_passes} catch-up pass(es) with {done.caught_up_rows:,} "
                f"changed rows, {done.duration_s:.1f} s")


@app.command("repair")
def repair(index: IndexName) -> None:
    """Compare an index with PostgreSQL (rows per organization, a sample of documents) and re-sync exactly
    what differs. Exit 1 when differences remain afterwards."""
    from orchestrator_data.search import reconcile

    [name] = _names([index], SYNCED_INDICES)
    with search_clients() as c:
        found, report = reconcile.repair(c.engine, c.es, c.layout, name)
        after = reconcile.reconcile(c.engine, c.es, c.layout, name)
    output.info(f"{name}: {len(found.count_differences)} organization(s) with different counts, "
                f"{len(found.sample_differences)} sampled document(s) different; rewrote {report.documents_written}, "
                f"deleted {report.documents_deleted}")
    if after.ok:
        output.info(f"{output.OK} {name}: {after.documents:,} documents = {after.postgres_rows:,} rows")
        return
    for line in [f"{org}: {pg} rows, {es} documents" for org, (pg, es) in after.count_differences.items()][:10] + \
            after.sample_differences[:10]:
        output.info(f"    still different: {line}")
    if report.stale_skipped:
        output.info(f"    {report.stale_skipped} document(s) carry a newer version than their rows (a restored "
                    f"database?): `orchestrator-data search reindex {name}` rebuilds the index from PostgreSQL")
    raise typer.Exit(1)


@app.command("query")
def query(
    organization_id: Annotated[str, typer.Argument(help="The organization searching (a UUID): only its documents, "
                                                        "and everyone's published marketplace listings, are found.")],
    text: Annotated[str, typer.Argument(help="Words to look for (never parsed as query syntax); '' for the newest.")],
    index: Annotated[str | None, typer.Option("--index", help=f"One of: {', '.join(SEARCH_INDICES)} (default: "
                                                               f"all but system_metrics).")] = None,
    size: Annotated[int, typer.Option("--size", help="Hits to return, 1-100.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: a list of hits.")] = False,
) -> None:
    """Search as the product does: always within one organization."""
    from orchestrator_data.search import query as search_query

    if index is not None:
        _names([index], SEARCH_INDICES)
    with search_clients(postgres=False) as c:
        hits = search_query.search(c.es, c.layout, organization_id, text, index=index, size=size)
    if as_json:
        output.print_json([{"index": h.index, "id": h.id, "organization_id": h.organization_id, "score": h.score}
                           for h in hits])
        return
    table = Table(title=f"{len(hits)} hit(s)", title_justify="left")
    for column in ("index", "id", "score", "title"):
        table.add_column(column)
    for h in hits:
        title = h.source.get("name") or h.source.get("workflow_name") or h.source.get("action") or ""
        table.add_row(h.index, h.id, f"{h.score:.2f}", str(title))
    output.console.print(table)


# -- lifecycle ------------------------------------------------------------------------------------------
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _policies(settings, given: list[str] | None) -> tuple[dict, tuple[str, ...]]:
    from orchestrator_data.search import policies as lifecycle_policies

    names = _names(given, SEARCH_INDICES)
    return lifecycle_policies.policies_of(settings), names


@app.command("rollover")
def rollover(dry_run: DryRun = False, index: IndexOption = None, as_json: JsonOption = False) -> None:
    """Roll each index's write alias over to a new backing index where its policy says so: per index, each
    condition's current value against its threshold, and what happened (or would)."""
    from orchestrator_data.search import lifecycle
    from orchestrator_data.search import rollover as search_rollover

    started = time.monotonic()
    with search_clients() as c:
        policies, names = _policies(c.settings, index)
        decisions = [search_rollover.rollover_index(c.engine, c.es, c.layout, policies[n], dry_run=dry_run) for n in names]
    if not dry_run:
        timed = (lifecycle.LifecycleReport(decisions, []), time.monotonic() - started)
        recording.record(c.settings, "search rollover", lambda keys: [(keys.SEARCH_LIFECYCLE, timed)])
    if as_json:
        output.print_json([asdict(d) for d in decisions])
        return
    table = Table(title=f"rollover{' (dry run)' if dry_run else ''}", title_justify="left")
    for column in ("index", "write index", "condition", "value", "threshold", "met", "outcome"):
        table.add_column(column)
    for d in decisions:
        outcome = d.action + (f" → {d.new_index}" if d.new_index else "") + (f" ({d.reason})" if d.reason else "")
        rows = d.checks or [None]
        for position, c in enumerate(rows):
            first = position == 0
            table.add_row(d.index if first else "", (d.write_index or "-") if first else "",
                          c.condition if c else "-", c.value if c else "-", c.threshold if c else "-",
                          ("[green]yes[/green]" if c.met else "no") if c else "-", outcome if first else "")
    output.console.print(table)
    if any(d.action == "missing" for d in decisions):
        raise typer.Exit(1)


@app.command("retention")
def retention(dry_run: DryRun = False, index: IndexOption = None, as_json: JsonOption = False) -> None:
    """Delete the backing indices that rolled over longer ago than their policy keeps them (never a write
    index): per backing index, when it rolled over, its age, and what happened (or would)."""
    from orchestrator_data.search import index_retention, lifecycle
    from orchestrator_data.units import show

    started = time.monotonic()
    with search_clients() as c:
        policies, names = _policies(c.settings, index)
        reports = [index_retention.retention_index(c.engine, c.es, c.layout, policies[n], dry_run=dry_run) for n in names]
    if not dry_run:
        timed = (lifecycle.LifecycleReport([], reports), time.monotonic() - started)
        recording.record(c.settings, "search retention", lambda keys: [(keys.SEARCH_LIFECYCLE, timed)])
    if as_json:
        output.print_json([asdict(r) | {"deleted": r.deleted} for r in reports])
        return
    table = Table(title=f"retention{' (dry run)' if dry_run else ''}", title_justify="left")
    for column in ("index", "delete after", "backing index", "rolled over", "age", "action"):
        table.add_column(column)
    for r in reports:
        if not r.backing:
            table.add_row(r.index, r.delete_after or "never", "-", "-", "-", f"{r.action} ({r.reason})")
        for position, b in enumerate(r.backing):
            table.add_row(r.index if position == 0 else "", (r.delete_after or "never") if position == 0 else "",
                          b.index, b.rolled_over_at.strftime("%Y-%m-%d %H:%M:%S") if b.rolled_over_at else "-",
                          show("time", b.age_s), b.action)
    output.console.print(table)
    if any(r.action == "missing" for r in reports):
        raise typer.Exit(1)


@lifecycle_app.command("show")
def lifecycle_show(as_json: JsonOption = False) -> None:
    """Each index's policy and the file it comes from (SEARCH_LIFECYCLE_DIR replaces the package's)."""
    from orchestrator_data.search import policies as lifecycle_policies

    policies = lifecycle_policies.policies_of(load_settings())
    if as_json:
        output.print_json({name: asdict(p) for name, p in policies.items()})
        return
    table = Table(title="lifecycle policies", title_justify="left")
    for column in ("index", "rollover when", "guards", "delete after", "file"):
        table.add_column(column)
    for p in policies.values():
        table.add_row(p.index, ", ".join(f"{k} {v}" for k, v in p.rollover.items() if k.startswith("max_")) or "never",
                      ", ".join(f"{k} {v}" for k, v in p.rollover.items() if k.startswith("min_")) or "-",
                      p.delete_after or "never", p.source)
    output.console.print(table)


@lifecycle_app.command("export")
def lifecycle_export(index: Annotated[str | None, typer.Option("--index", help="Only this index's policy.")] = None
                     ) -> None:
    """Print the policies as ILM policies (JSON: policy name → body for PUT _ilm/policy/<name>), for a
    cluster that has ILM. Needs no server."""
    from orchestrator_data.search import indices
    from orchestrator_data.search import policies as lifecycle_policies

    settings = load_settings()
    names = _names([index] if index else None, SEARCH_INDICES)
    policies = lifecycle_policies.policies_of(settings)
    layout = indices.layout_of(settings)
    output.print_json({f"{layout.prefix}-{n}": lifecycle_policies.ilm_policy(policies[n], layout) for n in names})


app.add_typer(search_snapshot.app, name="snapshot")
