"""Recording CLI work in Dagster (see assets/records.py): after a command did its work, the matching
assets' materializations go to the instance `orchestrator-data ui` uses. Never fails the command: if
Dagster's storage cannot be reached, one line says so and the command still succeeds."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from orchestrator_data.cli import output
from orchestrator_data.redaction import redact

# Set to 0 to leave Dagster alone (e.g. a script that runs many commands and records elsewhere).
RECORD_VARIABLE = "ORCHESTRATOR_DATA_RECORD"


def dagster_home_for_records(settings) -> Path | None:
    """The instance's home as `ui` and `run` make it, or None when there is no PostgreSQL for
    Dagster's storage (then there is nothing to record into). Raises when that PostgreSQL does not
    answer within a few seconds: Dagster's own client would retry for much longer."""
    from orchestrator_data.connections import ServiceNotConfigured, resolve_url

    try:
        url = resolve_url("dagster", settings)
    except ServiceNotConfigured:
        return None
    _answers(url)
    from orchestrator_data.cli.dagster_env import dagster_home

    return dagster_home(settings)


def _answers(url: str) -> None:
    import sqlalchemy as sa

    from orchestrator_data.postgres import client

    engine = client.create_engine(url, pool=client.PoolOptions(size=1, max_overflow=0), connect_timeout=3,
                                  application_name="orchestrator-data-record")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    finally:
        engine.dispose()


def record(settings, command: str, materializations: Callable[[], list[tuple[str, dict]]],
           partition: str | None = None) -> None:
    """Record what `materializations()` builds (it imports the assets' metadata functions, so it runs
    only here, after the work); `partition`: the partition of a partitioned asset."""
    if os.environ.get(RECORD_VARIABLE, "1").strip().lower() in ("0", "false", "no", "off"):
        return
    try:
        home = dagster_home_for_records(settings)
        if home is None:
            output.note("not recorded in Dagster: no PostgreSQL for its storage (DAGSTER_PG_URL or the local stack)")
            return
        from assets import records

        built = materializations()
        records.record(home, built, command, partition)
    except Exception as exc:  # noqa: BLE001 - recording is a courtesy: the work is done either way
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        output.note(f"not recorded in Dagster (its storage: {type(exc).__name__}: {redact(reason)}); "
                    f"the work itself is done")
        return
    output.note(f"recorded in Dagster: {', '.join(sorted({asset for asset, _ in built}))}")


# -- what each command records: built by the assets' own metadata functions, imported here lazily ----
def schema_record(settings, postgres_url: str, report) -> tuple[str, dict]:
    from assets.postgres import schema_metadata
    from orchestrator_data.connections import postgres_engine
    from orchestrator_data.postgres import catalog

    engine = postgres_engine(settings, postgres_url)
    try:
        return "postgres_schema", schema_metadata(report, catalog.table_stats(engine))
    finally:
        engine.dispose()


def index_records(settings, made: list) -> list[tuple[str, dict]]:
    """search_<index>_index for each IndexInit of `made`."""
    from assets.search import index_init_metadata
    from orchestrator_data.connections import elasticsearch_client
    from orchestrator_data.search import status
    from orchestrator_data.search.indices import layout_of

    client = elasticsearch_client(settings)
    try:
        return [(f"search_{m.name}_index", index_init_metadata(status.index_report(None, client, layout_of(settings),
                                                                                   m.name), m)) for m in made]
    finally:
        client.close()


def init_records(settings, postgres_url: str, report) -> list[tuple[str, dict]]:
    """What `init` and `reset` did, as postgres_schema, redis_keyspace and the index assets."""
    from assets.redis import keyspace_setup_metadata

    found = []
    if report.migration is not None:
        found.append(schema_record(settings, postgres_url, report.migration))
    if report.redis is not None:
        found.append(("redis_keyspace", keyspace_setup_metadata(report.redis)))
    if report.search:
        found += index_records(settings, report.search)
    return found
