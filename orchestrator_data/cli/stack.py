"""`orchestrator-data stack start|stop|status`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data.cli import output
from orchestrator_data.cli.choices import STACK_SERVICES
from orchestrator_data.cli.context import load_settings
from orchestrator_data.errors import BadInput

app = typer.Typer(rich_markup_mode=None, help="Start, stop and inspect the local PostgreSQL, Redis and Elasticsearch.", no_args_is_help=True)

Only = Annotated[
    list[str] | None,
    typer.Option("--only", help=f"Limit to these services ({', '.join(STACK_SERVICES)}); repeatable."),
]


def _check_only(only: list[str] | None) -> list[str] | None:
    for name in only or []:
        if name not in STACK_SERVICES:
            raise BadInput(f"--only: unknown service '{name}'; expected one of {', '.join(STACK_SERVICES)}")
    return only


@app.command()
def start(
    only: Only = None,
    standby: Annotated[bool, typer.Option(
        "--standby", help="Run PostgreSQL as an HA pair: a primary and a streaming standby under Patroni and a "
                          "local etcd, failed over automatically (as POSTGRES_STANDBYS=1).")] = False,
) -> None:
    """Start every service whose URL is not configured (idempotent; data is kept between runs)."""
    from orchestrator_data.stack import Stack

    settings = load_settings()
    stack = Stack(settings, standbys=max(1, settings.postgres_standbys) if standby else None)
    only = _check_only(only)
    external = [name for name in STACK_SERVICES if stack.configured_externally(name)]
    for name in external:
        output.info(f"{name}: configured by the environment, not started locally")
    def report(s) -> None:
        if s.detail.get("note"):
            output.info(f"{s.name}: {s.detail['note']}")
        where = f" at {s.masked_url}" if s.masked_url else ""
        output.info(f"{output.OK} {s.name} {s.version or ''}{where} (pid {s.pid})")
        for line in member_lines(s):
            output.info(f"  {line}")

    stack.start(only=only, on_started=report)


@app.command()
def stop(only: Only = None) -> None:
    """Stop the local services; their data stays under the state directory."""
    from orchestrator_data.stack import Stack

    settings = load_settings()
    only = _check_only(only)
    stopped = Stack(settings).stop(only=only)
    for name, was_running in stopped.items():
        output.info(f"{name}: {'stopped' if was_running else 'was not running'}")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Each local service: URL (password masked), version, pid, data directory. Exit 1 if one is down."""
    from orchestrator_data.stack import Stack

    stack = Stack(load_settings())
    statuses = stack.status()
    if as_json:
        output.print_json({"state_dir": str(stack.root), "services": [s.public() for s in statuses]})
    else:
        table = Table(title=f"local stack in {stack.root}", title_justify="left")
        for column in ("", "service", "url", "version", "pid", "data directory"):
            table.add_column(column)
        for s in statuses:
            table.add_row(output.OK if s.running else output.FAIL, s.name, s.masked_url or "-",
                          s.version or "-", str(s.pid or "-"), s.data_dir or "-")
        output.console.print(table)
        for s in statuses:
            for line in member_lines(s):
                output.info(line)
    if not all(s.running for s in statuses):
        raise typer.Exit(1)


def member_lines(status) -> list[str]:
    """The HA pair's members, one line each, as Patroni reports them (role, state, timeline, lag)."""
    ha = status.detail.get("ha") if status is not None else None
    if not ha:
        return []
    lines = [f"{status.name}: HA pair ({ha['mode']} replication), etcd at {ha['etcd']}"
             + (f"; {ha['error']}" if ha.get("error") else "")]
    for m in ha["members"]:
        lag = "" if m["lag_bytes"] is None else f", lag {m['lag_bytes']} B"
        lines.append(f"  {m['name']}: {m['role']}, {m['state']}, port {m['port']}, timeline {m['timeline']}{lag}")
    return lines
