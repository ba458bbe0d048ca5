"""Recording CLI work in Dagster (see assets/records.py): after a command did its work, the matching
assets' materializations, and their checks' results, go to the instance `orchestrator-data ui` uses.
The only CLI module that imports from assets/ (once, lazily). Never fails the command: if Dagster's
storage cannot be reached, one line says so and the command still succeeds."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

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


def record(settings, command: str, reports: Callable[[ModuleType], list[tuple[str, object]]],
           partition: str | None = None) -> None:
    """Record what a command changed: `reports(keys)` names each changed asset with the plain report
    the core returned (`keys` is assets/keys.py, where the asset names are spelled), e.g.
    `lambda keys: [(keys.POSTGRES_BACKUP, entry)]`. The asset's own metadata builder turns each into
    its materialization, and the asset's checks are evaluated and recorded with it. `partition`: the
    partition of a partitioned asset."""
    if os.environ.get(RECORD_VARIABLE, "1").strip().lower() in ("0", "false", "no", "off"):
        return
    try:
        home = dagster_home_for_records(settings)
        if home is None:
            output.note("not recorded in Dagster: no PostgreSQL for its storage (DAGSTER_PG_URL or the local stack)")
            return
        from assets import keys, records  # the one import of the Dagster side, here, after the work

        with records.settings_resources() as live:
            recorded = records.record(home, command, reports(keys), live, partition)
    except Exception as exc:  # noqa: BLE001 - recording is a courtesy: the work is done either way
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        output.note(f"not recorded in Dagster (its storage: {type(exc).__name__}: {redact(reason)}); "
                    f"the work itself is done")
        return
    output.note(f"recorded in Dagster: {', '.join(sorted(set(recorded.assets)))}{_checks_said(recorded.checks)}")


def _checks_said(checks) -> str:
    if not checks:
        return ""
    said = [f"{c.asset}:{c.name} " + ("passed" if c.passed else "failed" if c.passed is False
                                       else f"not evaluated ({redact(c.error or '')})") for c in checks]
    return f"; checks: {', '.join(said)}"
