"""`orchestrator-data init` and `orchestrator-data reset`, as the original tool had them."""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated

import typer

from orchestrator_data import provisioning
from orchestrator_data.cli import output, recording
from orchestrator_data.cli.context import load_or_exit, resolve_or_exit
from orchestrator_data.connections import elasticsearch_client, redis_client
from orchestrator_data.postgres import migrator
from orchestrator_data.redis.errors import KeyspaceError
from orchestrator_data.search.indices import layout_of

SkipRedis = Annotated[bool, typer.Option("--skip-redis", help="Leave Redis alone.")]
SkipSearch = Annotated[bool, typer.Option("--skip-search", help="Leave the search indices alone.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print each step's details.")]


def _targets(settings, skip_redis: bool, skip_search: bool):
    postgres_url = resolve_or_exit(settings, "postgres")
    redis = None if skip_redis else redis_client(settings, resolve_or_exit(settings, "redis"))
    es = None if skip_search else elasticsearch_client(settings, resolve_or_exit(settings, "elasticsearch"))
    search = None if es is None else provisioning.SearchTarget(es, layout_of(settings), settings.search_shards,
                                                                settings.search_replicas)
    return postgres_url, redis, es, search


def _close(redis, es) -> None:
    with suppress(Exception):
        if redis is not None:
            redis.close()
        if es is not None:
            es.close()


def _print_init(report: provisioning.InitReport, verbose: bool) -> bool:
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
    settings = load_or_exit()
    postgres_url, redis, es, search = _targets(settings, skip_redis, skip_search)
    try:
        report = provisioning.init(postgres_url, redis, search)
    except (migrator.MigrationError, KeyspaceError) as exc:
        output.error(str(exc))
        raise typer.Exit(1) from None
    except Exception as exc:  # noqa: BLE001 - an unreachable server: the reason, without a traceback
        output.error(f"init failed: {migrator.describe_error(exc)}")
        raise typer.Exit(1) from None
    finally:
        _close(redis, es)
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
    settings = load_or_exit()
    try:
        provisioning.check_reset_allowed(settings.environment.value, confirm)
    except provisioning.ResetRefused as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
    postgres_url, redis, es, search = _targets(settings, skip_redis, skip_search)
    try:
        report = provisioning.reset(settings.environment.value, confirm, postgres_url, redis, search)
    except (migrator.MigrationError, KeyspaceError) as exc:
        output.error(str(exc))
        raise typer.Exit(1) from None
    except Exception as exc:  # noqa: BLE001
        output.error(f"reset failed: {migrator.describe_error(exc)}")
        raise typer.Exit(1) from None
    finally:
        _close(redis, es)
    output.info(f"dropped {len(report.dropped_tables)} tables, {len(report.search_indices_deleted)} search indices; "
                f"deleted {report.redis_keys_deleted} Redis keys")
    ok = _print_init(report.init, verbose)
    recording.record(settings, "reset", lambda keys: keys.provisioned(report.init))
    if not ok:
        raise typer.Exit(1)
