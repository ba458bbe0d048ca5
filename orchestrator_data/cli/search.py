"""`orchestrator-data search init|sync|status|reindex|repair|query`: the search indices from a terminal.

Exit codes: 0 done; 1 the cluster or PostgreSQL failed (unreachable, a sync that could not finish —
its watermark stays where it was); 2 bad input (unknown index, bad organization id, bad configuration,
no URL and no local stack)."""

from __future__ import annotations

import sys
from contextlib import contextmanager, suppress
from typing import Annotated

import typer
from elasticsearch import ApiError, TransportError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator_data import connections
from orchestrator_data.cli import output
from orchestrator_data.cli.context import load_or_exit, resolve_or_exit
from orchestrator_data.search import indices, query as search_query, reconcile, reindex as search_reindex
from orchestrator_data.search import status as search_status, sync
from orchestrator_data.search.indices import NAMES, SearchError, UnknownIndex

app = typer.Typer(help="Search indices: init, sync from PostgreSQL, status, reindex, repair, query.",
                  no_args_is_help=True)
IndexName = Annotated[str, typer.Argument(help=f"One of: {', '.join(sync.SYNCED)}.")]

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
    except (UnknownIndex, search_query.InvalidOrganization, search_query.InvalidSearch) as exc:
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
        results = sync.prepare(engine, client, layout, names, shards=settings.search_shards,
                               replicas=settings.search_replicas)
    for r in results:
        what = "created" if r.created else "exists"
        note = " (the definition has a newer mapping version: reindex to apply it)" if r.needs_reindex else ""
        output.info(f"{output.OK} {r.name:<15} {what:<8} {r.read_alias} → {r.write_index} "
                    f"(mapping v{r.mapping_version}){note}")


@app.command("sync")
def sync_(
    full: Annotated[bool, typer.Option("--full", help="Reload every row, not only what changed.")] = False,
    index: IndexOption = None,
) -> None:
    """Bring the indices up to date with PostgreSQL (incremental unless --full or never synced)."""
    names = _names(index, sync.SYNCED)
    with _clients() as (settings, engine, client, layout), _progress() as progress:
        tasks: dict[str, object] = {}

        def shown(report):
            if report.index not in tasks:
                tasks[report.index] = progress.add_task(report.index, total=None)
            progress.update(tasks[report.index], completed=report.rows_read,
                            description=f"{report.index} ({report.mode})")

        reports = sync.sync(engine, client, layout, names, full=full, on_progress=shown if progress else None)
    for r in reports:
        output.info(f"{output.OK} {r.index:<12} {r.mode:<11} {r.documents_written:>9,} written "
                    f"{r.documents_deleted:>7,} deleted {r.stale_skipped:>7,} already current "
                    f"{r.documents_per_s:>9,.0f} docs/s  watermark {r.watermark_from} → {r.watermark_to}")


@contextmanager
def _progress():
    """A live progress line per index on a terminal; nothing when output is piped."""
    if not sys.stdout.isatty():
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} rows"),
                  TimeElapsedColumn(), console=output.console, transient=True) as progress:
        yield progress


@app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Per index: alias, backing indices, mapping version, documents, PostgreSQL rows, lag. Exit 1 when
    an index is missing."""
    with _clients() as (settings, engine, client, layout):
        reports = search_status.search_status(engine, client, layout)
    if as_json:
        output.print_json(search_status.as_json(reports))
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
    if not all(r.exists for r in reports):
        raise typer.Exit(1)


@app.command("reindex")
def reindex(index: IndexName) -> None:
    """Rebuild an index with its current mapping beside the live one, catch up, swap the aliases atomically."""
    [name] = _names([index], sync.SYNCED)
    with _clients() as (settings, engine, client, layout):
        with _progress() as progress:
            task = progress.add_task(f"{name} (reindex)", total=None) if progress else None
            done = search_reindex.reindex(engine, client, layout, name, on_progress=(
                (lambda r: progress.update(task, completed=r.rows_read)) if progress else None))
    output.info(f"{output.OK} {name}: {', '.join(done.old_indices)} → {done.new_index} (mapping v{done.mapping_version}), "
                f"{done.documents:,} documents, {done.catch_up_passes} catch-up pass(es) with {done.caught_up_rows:,} "
                f"changed rows, {done.duration_s:.1f} s")


@app.command("repair")
def repair(index: IndexName) -> None:
    """Compare an index with PostgreSQL (rows per organization, a sample of documents) and re-sync exactly
    what differs. Exit 1 when differences remain afterwards."""
    [name] = _names([index], sync.SYNCED)
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


from orchestrator_data.cli import search_snapshot  # noqa: E402 - it uses _clients above
app.add_typer(search_snapshot.app, name="snapshot")
