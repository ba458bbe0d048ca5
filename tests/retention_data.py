"""Rows aged for retention: what each test purges, by construction. Shared by the retention tests of
the core, the CLI and the assets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan

OLD_EXECUTIONS = 120  # created 100 days ago; the rest stay recent


@dataclass
class Seeded:
    engine: sa.Engine
    old_executions: set[str]
    executions: int          # all of them, before any purge


def scalar(engine: sa.Engine, statement: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(statement), params).scalar()


def ids(engine: sa.Engine, statement: str, **params) -> set[str]:
    with engine.connect() as conn:
        return {str(i) for i in conn.execute(sa.text(statement), params).scalars()}


def seeded_for_retention(engine: sa.Engine, executions: int = 300) -> Seeded:
    seed(engine, "testing", SeedPlan(executions=executions))
    with engine.begin() as conn:
        # the seed spreads creation times over months: make them all recent, then age a known set
        conn.execute(sa.text("UPDATE executions SET created_at = now() - interval '1 day'"))
        # executions of live workflows only, so a workflow purge cannot take them too
        old = {str(i) for i in conn.execute(sa.text(
            "UPDATE executions SET created_at = now() - interval '100 days' WHERE id IN ("
            " SELECT e.id FROM executions e JOIN workflows w ON w.id = e.workflow_id"
            " WHERE w.deleted_at IS NULL ORDER BY e.id LIMIT :n) RETURNING id"), {"n": OLD_EXECUTIONS}).scalars()}
    assert len(old) == OLD_EXECUTIONS
    return Seeded(engine, old, scalar(engine, "SELECT count(*) FROM executions"))


def policy_dir(tmp_path: Path, **policies: dict) -> Path:
    """A RETENTION_POLICY_DIR with one file per table given: table=dict(delete_after=..., batch_size=...)."""
    directory = tmp_path / "retention"
    directory.mkdir(parents=True, exist_ok=True)
    for table, fields in policies.items():
        (directory / f"{table}.json").write_text(json.dumps({"table": table, **fields}))
    return directory


KEEP_ALL = {"workflows": {"delete_after": None}, "marketplace_items": {"delete_after": None},
            "executions": {"delete_after": None}, "audit_logs": {"delete_after": None}}
