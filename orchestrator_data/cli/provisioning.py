"""`orchestrator-data init` and `orchestrator-data reset`, as the original tool had them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import Clients, clients, load_settings

SkipRedis = Annotated[bool, typer.Option("--skip-redis", help="Leave Redis alone.")]
SkipSearch = Annotated[bool, typer.Option("--skip-search", help="Leave the search indices alone.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print each step's details.")]


@contextmanager
def _targets(settings, skip_redis: bool, skip_search: bool) -> Iterator[tuple[Clients, object]]:
    """The clients and the search target of init and reset (None for a part skipped)."""
    from orchestrator_data import provisioning

    with clients(settings, redis=not skip_redis, search=not skip_search) as c:
        search = None if c.es is None else provisioning.SearchTarget(c.es, c.layout, settings.search_shards,
                                                                     settings.search_replicas)
        yield c, search


def _print_init(report, verbose: bool) -> bool:
    ok = True
    migration = report.migration
    if migration.applied:
        output.info(f"{output.OK} postgres   migrated {migration.start_revision or 'base'} → {migration.end_revision}"
                    f" ({', '.join(migration.applied_revisions)})")
    else:
        output.info(f"{output.OK} postgres   schema at {migration.end_revision}, nothing to migrate")
    if verbose:
        for applied in migration.applied:
            output.info(f"    {applied.revision} {applied.description} in {applied.duration_ms} ms")
    if report.redis is not None:
        keyspace = report.redis.keyspace
        problems = keyspace.problems
        mark = output.FAIL if problems else output.OK
        ok = ok and not problems
        output.info(f"{mark} redis      {keyspace.server}: {len(report.redis.scripts)} scripts loaded, "
                    f"{len(report.redis.groups_created)} consumer groups created")
        for line in problems:
            output.info(f"    problem: {line}")
        for line in keyspace.warnings:
            output.info(f"    warning: {line}")
    if report.search is not None:
        created = [r.name for r in report.search if r.created]
        output.info(f"{output.OK} search     {len(report.search)} indices ready"
                    + (f", created {', '.join(created)}" if created else ", nothing to create")
                    + " (`orchestrator-data search sync` loads them)")
        for r in report.search:
            if r.needs_reindex:
                output.info(f"    warning: {r.name} has an older mapping (v{r.mapping_version}) than its definition")
        if verbose:
            for r in report.search:
                output.info(f"    {r.read_alias} → {r.write_index} (mapping v{r.mapping_version})")
    for name in report.skipped:
        output.info(f"- {name:<10} skipped")
    return ok


def init(skip_redis: SkipRedis = False, skip_search: SkipSearch = False, verbose: Verbose = False) -> None:
    """Set the data layer up: migrate PostgreSQL to head, set up the Redis keyspace, create the search indices."""
    from orchestrator_data import provisioning

    settings = load_settings()
    with _targets(settings, skip_redis, skip_search) as (c, search):
        report = provisioning.init(c.postgres_url, c.redis, search)
    ok = _print_init(report, verbose)
    recording.record(settings, "init", lambda keys: keys.provisioned(report))
    if not ok:
        raise typer.Exit(1)


def reset(
    confirm: Annotated[bool, typer.Option("--confirm", help="Required: reset drops every table and key.")] = False,
    skip_redis: SkipRedis = False,
    skip_search: SkipSearch = False,
    verbose: Verbose = False,
) -> None:
    """Drop and recreate everything: PostgreSQL tables (roles stay), the Redis keyspace, the search indices.
    Refused in production."""
    from orchestrator_data import provisioning

    settings = load_settings()
    provisioning.check_reset_allowed(settings.environment.value, confirm)  # ResetRefused: before any client
    with _targets(settings, skip_redis, skip_search) as (c, search):
        report = provisioning.reset(settings.environment.value, confirm, c.postgres_url, c.redis, search)
    output.info(f"dropped {len(report.dropped_tables)} tables, {len(report.search_indices_deleted)} search indices; "
                f"deleted {report.redis_keys_deleted} Redis keys")
    ok = _print_init(report.init, verbose)
    recording.record(settings, "reset", lambda keys: keys.provisioned(report.init))
    if not ok:
        raise typer.Exit(1)
