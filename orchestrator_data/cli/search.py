"""`orchestrator-data search init|sync|load|status|reindex|repair|query|rollover|retention|lifecycle`: the
search indices from a terminal.

Exit codes: 0 done; 1 the cluster or PostgreSQL failed (unreachable, a sync that could not finish —
its watermark stays where it was); 2 bad input (unknown index, bad organization id, bad configuration,
no URL and no local stack)."""

from __future__ import annotations

import time
from contextlib import contextmanager, suppress
from dataclasses import asdict
from typing import Annotated

import typer
from elasticsearch import ApiError, TransportError
from rich.table import Table

from orchestrator_data import connections
from orchestrator_data.cli import output, progress, recording
from orchestrator_data.cli.context import load_or_exit, resolve_or_exit
from orchestrator_data.search import full_load, indices, lifecycle, query as search_query, reconcile, reindex as search_reindex
from orchestrator_data.search import status as search_status, sync
from orchestrator_data.search.errors import SearchError, UnknownIndex
from orchestrator_data.search.index_retention import retention_index
from orchestrator_data.search.indices import NAMES
from orchestrator_data.search.policies import InvalidPolicy, Policy, ilm_policy, policies_of
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.rollover import rollover_index
from orchestrator_data.search.sources import SYNCED
from orchestrator_data.units import show

app = typer.Typer(help="Search indices: init, sync from PostgreSQL, status, reindex, repair, query, rollover, "
                       "retention, lifecycle policies.", no_args_is_help=True)
lifecycle_app = typer.Typer(help="The lifecycle policies: show them, or export them as ILM policies.",
                            no_args_is_help=True)
app.add_typer(lifecycle_app, name="lifecycle")
IndexName = Annotated[str, typer.Argument(help=f"One of: {', '.join(SYNCED)}.")]

IndexOption = Annotated[list[str] | None, typer.Option("--index", help=f"Only this index (repeatable): {', '.join(NAMES)}.")]


@contextmanager
def _clients(need_postgres: bool = True):
    """(settings, engine or None, client, layout); configuration problems exit 2, unreachable servers 1."""
    settings = load_or_exit()
    es_url = resolve_or_exit(settings, "elasticsearch")
    engine = connections.postgres_engine(settings, resolve_or_exit(settings, "postgres"),
                                         application_name="orchestrator-data-search") if need_postgres else None
    client = connections.elasticsearch_client(settings, es_url)
    try:
        yield settings, engine, client, indices.layout_of(settings)
    except typer.Exit:
        raise  # a subcommand's own exit code (a RuntimeError: the catch-all below would turn it into 1)
    except (UnknownIndex, search_query.InvalidOrganization, search_query.InvalidSearch,
            InvalidPolicy, full_load.InvalidPartition) as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
    except SearchError as exc:
        output.error(str(exc))
        raise typer.Exit(1) from None
    except (ApiError, TransportError) as exc:
        output.error(f"Elasticsearch: {type(exc).__name__}: {getattr(exc, 'message', exc)}")
        raise typer.Exit(1) from None
    except Exception as exc:  # noqa: BLE001 - e.g. PostgreSQL unreachable: one line, no traceback
        from orchestrator_data.postgres.migrator import describe_error

        output.error(describe_error(exc))
        raise typer.Exit(1) from None
    finally:
        with suppress(Exception):
            client.close()
        if engine is not None:
            engine.dispose()


def _names(given: list[str] | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(given or allowed)
    for name in names:
        if name not in NAMES:
            output.error(str(UnknownIndex(name)))
            raise typer.Exit(2)
        if name not in allowed:
            output.error(f"index '{name}' is not synced from PostgreSQL; synced: {', '.join(allowed)}")
            raise typer.Exit(2)
    return names


@app.command("init")
def init(index: IndexOption = None) -> None:
    """Create the templates, indices and aliases (idempotent: what exists is left alone)."""
    names = _names(index, NAMES)
    with _clients() as (settings, engine, client, layout):
        results = sync.create_indices(engine, client, layout, names, shards=settings.search_shards,
                               replicas=settings.search_replicas)
    for r in results:
        what = "created" if r.created else "exists"
        note = " (the definition has a newer mapping version: reindex to apply it)" if r.needs_reindex else ""
        output.info(f"{output.OK} {r.name:<15} {what:<8} {r.read_alias} → {r.write_index} "
                    f"(mapping v{r.mapping_version}){note}")
    recording.record(settings, "search init", lambda: recording.index_records(settings, results))


@app.command("sync")
def sync_(
    full: Annotated[bool, typer.Option("--full", help="Reload every row, not only what changed.")] = False,
    index: IndexOption = None,
) -> None:
    """Bring the indices up to date with PostgreSQL (incremental unless --full or never synced)."""
    names = _names(index, SYNCED)
    with _clients() as (settings, engine, client, layout), progress.shown() as report:
        reports = sync.sync(engine, client, layout, names, full=full,
                            on_progress=lambda r: report(f"{r.index} ({r.mode})", r.rows_read, None, "rows"))
    recording.record(settings, "search sync", lambda: _documents_records(settings, reports))
    for r in reports:
        output.info(f"{output.OK} {r.index:<12} {r.mode:<11} {r.documents_written:>9,} written "
                    f"{r.documents_deleted:>7,} deleted {r.stale_skipped:>7,} already current "
                    f"{r.documents_per_s:>9,.0f} docs/s  watermark {r.watermark_from} → {r.watermark_to}")


@app.command("load")
def load(
    index: Annotated[str, typer.Argument(help=f"One of: {', '.join(full_load.PARTITIONED)}.")],
    month: Annotated[str, typer.Option("--month", help="The partition, YYYY-MM (UTC): from SEARCH_PARTITIONS_START "
                                                       "(which also loads every older row) to the current month "
                                                       "(every later row).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Load one month of an index in full (the same code as search_full_load_job's partitions): versions
    from the rows, so running it again writes nothing new. Never moves the sync's watermark."""
    settings = load_or_exit()
    try:  # bad input is refused before any server is asked
        full_load.partitioned_source(index)
        part = full_load.partition(month, settings.search_partitions_start)
    except SearchError as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
    with _clients() as (settings, engine, client, layout), progress.shown() as report:
        shown = None if as_json else (lambda r: report(f"{index} {part.key}", r.rows_read, None, "rows"))  # stdout: JSON only
        done = full_load.load_partition(engine, client, layout, index, part, on_progress=shown)
    recording.record(settings, "search load", lambda: _full_load_record(index, done), partition=done.partition)
    if as_json:
        output.print_json(done.as_dict())
        return
    output.info(f"{output.OK} {index} {done.partition}: {done.rows_read:,} rows, {done.documents_written:,} written, "
                f"{done.already_current:,} already current, {done.documents_per_s:,.0f} docs/s, "
                f"{done.duration_s:.1f} s, into {', '.join(done.written_to) or '-'} (snapshot xmin {done.snapshot_xmin})")


def _full_load_record(index: str, done: full_load.PartitionReport) -> list[tuple[str, dict]]:
    from assets.search_full_load import full_load_metadata

    return [(f"search_{index}_full_load", full_load_metadata(done))]


def _documents_records(settings, reports: list[SyncReport]) -> list[tuple[str, dict]]:
    from assets.search import documents_metadata

    with _clients() as (_, engine, client, layout):
        client.indices.refresh(index=",".join(layout.read_alias(r.index) for r in reports))
        return [(f"search_{r.index}_documents",
                 documents_metadata(search_status.index_report(engine, client, layout, r.index), r)) for r in reports]


def _lifecycle_record(done: lifecycle.LifecycleReport, duration_s: float) -> list[tuple[str, dict]]:
    from assets.search_lifecycle import lifecycle_metadata

    return [("search_lifecycle", lifecycle_metadata(done, duration_s))]


@app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Per index: alias, backing indices, mapping version, documents, PostgreSQL rows, lag. Exit 1 when
    an index is missing."""
    with _clients() as (settings, engine, client, layout):
        reports = search_status.search_status(engine, client, layout)
        ilm = lifecycle.ilm_status(client)
    if as_json:
        output.print_json(search_status.as_json(reports) | {"ilm": {"available": ilm is not None, "status": ilm}})
    else:
        table = Table(title=f"search indices ({layout.prefix}-*)", title_justify="left")
        for column in ("index", "alias", "backing", "mapping", "documents", "postgres rows", "lag rows", "lag",
                       "size"):
            table.add_column(column)
        for r in reports:
            table.add_row(r.name, r.alias if r.exists else "[red]missing[/red]", str(len(r.backing_indices)),
                          f"v{r.mapping_version}" if r.mapping_version else "-", f"{r.documents:,}",
                          "-" if r.postgres_rows is None else f"{r.postgres_rows:,}",
                          "-" if r.lag_rows is None else f"{r.lag_rows:,}",
                          "-" if r.lag_seconds is None else f"{r.lag_seconds:.0f} s", output.human_bytes(r.size_bytes))
        output.console.print(table)
        output.info(_ilm_line(ilm))
    if not all(r.exists for r in reports):
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
    [name] = _names([index], SYNCED)
    with _clients() as (settings, engine, client, layout):
        with progress.shown() as report:
            done = search_reindex.reindex(engine, client, layout, name, on_progress=(
                lambda r: report(f"{name} (reindex)", r.rows_read, None, "rows")))
    output.info(f"{output.OK} {name}: {', '.join(done.old_indices)} → {done.new_index} (mapping v{done.mapping_version}), "
                f"{done.documents:,} documents, {done.catch_up_passes} catch-up pass(es) with {done.caught_up_rows:,} "
                f"changed rows, {done.duration_s:.1f} s")


@app.command("repair")
def repair(index: IndexName) -> None:
    """Compare an index with PostgreSQL (rows per organization, a sample of documents) and re-sync exactly
    what differs. Exit 1 when differences remain afterwards."""
    [name] = _names([index], SYNCED)
    with _clients() as (settings, engine, client, layout):
        found, report = reconcile.repair(engine, client, layout, name)
        after = reconcile.reconcile(engine, client, layout, name)
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
    index: Annotated[str | None, typer.Option("--index", help=f"One of: {', '.join(NAMES)} (default: all but "
                                                               f"system_metrics).")] = None,
    size: Annotated[int, typer.Option("--size", help="Hits to return, 1-100.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: a list of hits.")] = False,
) -> None:
    """Search as the product does: always within one organization."""
    with _clients(need_postgres=False) as (settings, engine, client, layout):
        hits = search_query.search(client, layout, organization_id, text, index=index, size=size)
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


def _policies(settings, given: list[str] | None) -> tuple[dict[str, Policy], tuple[str, ...]]:
    names = _names(given, NAMES)
    return policies_of(settings), names


@app.command("rollover")
def rollover(dry_run: DryRun = False, index: IndexOption = None, as_json: JsonOption = False) -> None:
    """Roll each index's write alias over to a new backing index where its policy says so: per index, each
    condition's current value against its threshold, and what happened (or would)."""
    started = time.monotonic()
    with _clients() as (settings, engine, client, layout):
        policies, names = _policies(settings, index)
        decisions = [rollover_index(engine, client, layout, policies[n], dry_run=dry_run) for n in names]
    if not dry_run:
        recording.record(settings, "search rollover", lambda: _lifecycle_record(
            lifecycle.LifecycleReport(decisions, []), time.monotonic() - started))
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
    started = time.monotonic()
    with _clients() as (settings, engine, client, layout):
        policies, names = _policies(settings, index)
        reports = [retention_index(engine, client, layout, policies[n], dry_run=dry_run) for n in names]
    if not dry_run:
        recording.record(settings, "search retention", lambda: _lifecycle_record(
            lifecycle.LifecycleReport([], reports), time.monotonic() - started))
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
    settings = load_or_exit()
    try:
        policies = policies_of(settings)
    except InvalidPolicy as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
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
    settings = load_or_exit()
    names = _names([index] if index else None, NAMES)
    try:
        policies = policies_of(settings)
        layout = indices.layout_of(settings)
    except SearchError as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
    output.print_json({f"{layout.prefix}-{n}": ilm_policy(policies[n], layout) for n in names})


from orchestrator_data.cli import search_snapshot  # noqa: E402 - it uses _clients above
app.add_typer(search_snapshot.app, name="snapshot")
