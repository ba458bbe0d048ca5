"""`orchestrator-data recovery failover --confirm [--to MEMBER]`: a planned switchover of the local HA pair,
asked of Patroni through its REST API (Patroni demotes the primary, waits for the candidate to have every
commit, promotes it, and rewinds the old primary into a standby). A failed primary needs no command:
Patroni replaces it by itself (docs/failover.md).

Exit codes: 0 switched over; 1 the switchover failed; 2 no HA pair, an unknown member, or no --confirm."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from orchestrator_data.cli import output
from orchestrator_data.cli.context import load_settings
from orchestrator_data.errors import BadInput


def failover(
    confirm: Annotated[bool, typer.Option("--confirm", help="Switch over; without it, say what would happen.")] = False,
    to: Annotated[str | None, typer.Option("--to", help="The standby to promote (default: Patroni's choice).",
                                           metavar="MEMBER")] = None,
) -> None:
    """Planned switchover of the local HA pair (`stack start --standby`): the primary hands over to a standby."""
    from orchestrator_data.stack import Stack

    settings = load_settings()
    if settings.database_url:
        raise BadInput("DATABASE_URL is set: a switchover of that server is for the engine that runs it "
                       "(e.g. `patronictl switchover`); this command drives the local HA pair")
    service = Stack(settings).service("postgres")
    if not hasattr(service, "ha") or not service.is_running():
        raise BadInput("no HA cluster runs: start the local stack with a standby (`orchestrator-data stack start "
                       "--standby`, or POSTGRES_STANDBYS=1)")
    cluster = service.ha
    old = cluster.leader()
    if to is not None:
        cluster.member(to)  # an unknown name is refused here
    target = to or "the most up-to-date standby"
    if not confirm:
        output.info(f"would switch over from {old.name} (primary on port {old.port}, timeline {old.timeline}) "
                    f"to {target}; {settings.replication_mode} replication")
        raise BadInput("a switchover needs --confirm")
    started = time.monotonic()
    old, new = cluster.switchover(to)
    output.info(f"{output.OK} switched over from {old.name} to {new.name} (port {new.port}) "
                f"in {time.monotonic() - started:.1f} s; {old.name} rejoins as a standby")
