"""Entry point of the `orchestrator-data` console script."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator_data import __version__
from orchestrator_data.cli import backup as backup_cli
from orchestrator_data.cli import gdpr as gdpr_cli
from orchestrator_data.cli import metrics as metrics_cli
from orchestrator_data.cli import migrate as migrate_cli
from orchestrator_data.cli import output
from orchestrator_data.cli import provisioning as provisioning_cli
from orchestrator_data.cli import recovery as recovery_cli
from orchestrator_data.cli import retention as retention_cli
from orchestrator_data.cli import run as run_cli
from orchestrator_data.cli import search as search_cli
from orchestrator_data.cli import seed as seed_cli
from orchestrator_data.cli import stack as stack_cli
from orchestrator_data.cli import ui as ui_cli
from orchestrator_data.cli import worker as worker_cli
from orchestrator_data.cli.context import ExitCodeGroup, clients, describe_failure, load_settings

# Every module above imports only typer, rich and the CLI's own light helpers at start: each command
# imports the drivers and the core it needs when it runs (tests/cli/test_startup.py keeps it so).

app = typer.Typer(
    rich_markup_mode=None,  # plain help: typer's rich help imports markdown-it and doubles --help's time
    context_settings={"max_content_width": 160},  # plain help may use a wide terminal (click stops at 80)
    cls=ExitCodeGroup,
    help="Run the Robust AI Orchestrator's database layer: PostgreSQL, Redis and Elasticsearch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # tracebacks could show local variables holding secrets
    add_completion=False,
)
app.add_typer(stack_cli.app, name="stack")
app.add_typer(migrate_cli.app, name="migrate")
app.add_typer(seed_cli.app, name="seed")
app.add_typer(backup_cli.app, name="backup")
app.add_typer(search_cli.app, name="search")
app.add_typer(metrics_cli.app, name="metrics")
app.add_typer(gdpr_cli.app, name="gdpr")
app.add_typer(retention_cli.app, name="retention")
app.add_typer(worker_cli.app, name="worker")
app.add_typer(recovery_cli.app, name="recovery")
app.command("init")(provisioning_cli.init)
app.command("reset")(provisioning_cli.reset)
app.command("run")(run_cli.run)
app.command("ui")(ui_cli.ui)


def _version(value: bool) -> None:
    if value:
        output.info(f"orchestrator-data {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """orchestrator-data: schema, seeding, search sync, backups — the data layer, run from Dagster."""


@app.command("test")
def test_connections(
    skip_redis: Annotated[bool, typer.Option("--skip-redis", help="Do not require Redis.")] = False,
    skip_search: Annotated[bool, typer.Option("--skip-search", help="Do not require Elasticsearch.")] = False,
) -> None:
    """Connect to each configured service and print ✓/✗ with latency; exit 1 if one fails."""
    from orchestrator_data.connections import check_services

    settings = load_settings()
    services = ["postgres"]
    if not skip_redis:
        services.append("redis")
    if not skip_search:
        services.append("elasticsearch")
    results = check_services(settings, tuple(services))
    for health in results:
        if health.ok:
            output.info(f"{output.OK} {health.service:<14} {health.version:<10} {health.latency_ms:8.2f} ms")
        else:
            output.info(f"{output.FAIL} {health.service:<14} {health.error}")
    if not all(h.ok for h in results):
        raise typer.Exit(1)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    skip_search: Annotated[bool, typer.Option("--skip-search", help="Leave out the search indices.")] = False,
) -> None:
    """Health of PostgreSQL, Redis and Elasticsearch (versions, latency, pool use) and, unless --skip-search,
    each search index's documents and lag. Exit 1 if a server is unhealthy (a schema not migrated yet
    is said, with the command that migrates it, and is not a server's failure)."""
    from orchestrator_data.connections import check_services
    from orchestrator_data.search import status as search_status

    settings = load_settings()
    results = check_services(settings)
    healthy = all(h.ok for h in results)
    search, search_error = (None, None) if skip_search or not healthy else _search_summary(settings)
    if as_json:
        output.print_json({
            "environment": settings.environment.value,
            "healthy": healthy,
            "services": {h.service: h.as_dict() for h in results},
            **({"search": search_status.as_json(search)} if search is not None else {}),
            **({"search_error": search_error} if search_error else {}),
            **({"ha": pair.detail["ha"]} if (pair := _ha_pair(settings)) else {}),
        })
    else:
        output.console.print(output.health_table(results, f"orchestrator-data ({settings.environment.value})"))
        for health in results:
            if health.service == "postgres" and "replication" in health.detail:
                from orchestrator_data.replication.status import summary_lines, from_dict

                for line in summary_lines(from_dict(health.detail["replication"])):
                    output.info(line)
        for r in search or []:
            fine = r.exists and r.state not in (search_status.State.DIFFERS, search_status.State.NEVER_SYNCED)
            # the index may still show rows the database lost (a restore, a failover): the next sync rebuilds it
            warned = fine and r.state == search_status.State.HISTORIES_DIFFER
            mark = output.WARN if warned else output.OK if fine else output.FAIL
            state = r.describe() if r.exists else "missing: run `orchestrator-data search init`"
            output.info(f"{mark} search {r.name:<15} {state}")
        if search_error:
            output.info(f"{output.FAIL} search unavailable: {search_error}")
        for line in stack_cli.member_lines(_ha_pair(settings)):
            output.info(line)
    if not healthy:
        raise typer.Exit(1)


def _ha_pair(settings):
    """The local HA pair's status (members as Patroni reports them) when the stack runs one, else None."""
    if settings.database_url:
        return None
    from orchestrator_data.stack import Stack

    service = Stack(settings).service("postgres")
    return service.status() if hasattr(service, "ha") and service.is_running() else None


NOT_MIGRATED = "the schema is not migrated yet: run `orchestrator-data init`"


def _search_summary(settings) -> tuple[list | None, str | None]:
    """Each index's report, or why there is none (the schema not migrated yet, an index unreadable)."""
    from orchestrator_data.postgres import catalog
    from orchestrator_data.search import status as search_status

    with clients(settings, search=True, application_name="orchestrator-data-status") as c:
        try:
            with c.engine.connect() as conn:
                if not catalog.table_exists(conn, catalog.VERSION_TABLE):
                    return None, NOT_MIGRATED
            return search_status.search_status(c.engine, c.es, c.layout), None
        except Exception as exc:  # noqa: BLE001 - status reports, it does not fail on the search summary
            return None, describe_failure(exc)[:300]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
