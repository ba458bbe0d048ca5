"""Loading and removing the seed: deterministic, idempotent, all-or-nothing.

The whole seed is one transaction: a failure leaves nothing half-written. Small tables go in with
INSERT ... ON CONFLICT DO NOTHING (their ids are deterministic, so a second run adds nothing);
executions stream through COPY, one per organization, generated lazily so memory stays flat at
any scale. Tenant tables have FORCE row-level security, so rows are written per organization with
`app.organization_id` set for that transaction, as the product itself must.

Seed rows are synthetic, not user activity: the audit triggers are paused for the seed's own
transaction (ALTER TABLE ... DISABLE TRIGGER is transactional and needs table ownership, which the
migrating role has), so a million seeded executions do not become a million audit rows. Instead each
table gets one REWRITE mark in the audit trail (postgres/rewrites.py), from which the search sync knows
to rebuild its indices from PostgreSQL. The
table locks this takes are why seeding is refused in production.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from orchestrator_data.errors import BadInput
from orchestrator_data.postgres import models
from orchestrator_data.postgres.rewrites import audit_paused
from orchestrator_data.postgres.seed_data import (
    EXECUTION_COLUMNS,
    SeedPlan,
    build_small_tables,
    executions_for,
    seeded_range,
)
from orchestrator_data.progress import Report, quiet

SEEDABLE_ENVIRONMENTS = ("development", "testing")
DEFAULT_SCALE = {"development": 20_000, "testing": 2_000}


class SeedRefused(BadInput):
    """A seed or clean that must not run (production, no --confirm). The message says why."""


@dataclass
class SeedReport:
    environment: str
    executions_planned: int
    inserted: dict[str, int] = field(default_factory=dict)  # rows this run added, per table
    deleted: dict[str, int] = field(default_factory=dict)
    rows_per_organization: dict[str, dict[str, int]] = field(default_factory=dict)
    duration_s: float = 0.0
    copy_rows_per_s: float | None = None

    @property
    def total_inserted(self) -> int:
        return sum(self.inserted.values())


def check_environment(environment: str) -> None:
    if environment not in SEEDABLE_ENVIRONMENTS:
        raise SeedRefused(
            f"seeding is refused in the '{environment}' environment; it writes synthetic data "
            f"(allowed: {', '.join(SEEDABLE_ENVIRONMENTS)})"
        )


def _set_tenant(conn: sa.Connection, organization_id) -> None:
    conn.execute(sa.text("SELECT set_config('app.organization_id', :org, true)"), {"org": str(organization_id)})


def _id_column(table: str) -> str:
    return "user_id" if table == "role_memberships" else "id"


def _seeded_count(conn: sa.Connection, table: str, organization_ids) -> int:
    """Seeded rows of `table`, counted tenant by tenant (an unset tenant sees nothing under RLS)."""
    kind = "users" if table == "role_memberships" else table
    low, high = seeded_range(kind)
    where = f"{_id_column(table)} BETWEEN :low AND :high"
    if table == "organizations":
        return conn.execute(sa.text(f"SELECT count(*) FROM organizations WHERE {where}"),
                            {"low": low, "high": high}).scalar_one()
    total = 0
    for organization_id in organization_ids:
        _set_tenant(conn, organization_id)
        total += conn.execute(
            sa.text(f'SELECT count(*) FROM "{table}" WHERE organization_id = :org AND {where}'),
            {"org": organization_id, "low": low, "high": high},
        ).scalar_one()
    return total


def _seeded_organizations(conn: sa.Connection) -> list:
    low, high = seeded_range("organizations")
    return list(conn.execute(sa.text("SELECT id FROM organizations WHERE id BETWEEN :low AND :high"),
                             {"low": low, "high": high}).scalars())


PROGRESS_EVERY = 10_000  # rows between two progress reports of the COPY


def _copy_executions(conn: sa.Connection, rows, planned: int, on_progress: Report = quiet) -> int:
    """COPY the rows (grouped by organization) into executions; returns how many were written."""
    raw = conn.connection.driver_connection  # psycopg 3
    written = 0
    columns = ", ".join(EXECUTION_COLUMNS)
    on_progress("executions", 0, planned, "rows")
    for organization_id, group in itertools.groupby(rows, key=lambda row: row[1]):
        _set_tenant(conn, organization_id)
        with raw.cursor() as cursor, cursor.copy(f"COPY executions ({columns}) FROM STDIN") as copy:
            for row in group:
                copy.write_row(row)
                written += 1
                if written % PROGRESS_EVERY == 0:
                    on_progress("executions", written, planned, "rows")
    on_progress("executions", written, max(planned, written), "rows")
    return written


def seed(engine: sa.Engine, environment: str, plan: SeedPlan, on_progress: Report = quiet) -> SeedReport:
    check_environment(environment)
    started = time.perf_counter()
    report = SeedReport(environment=environment, executions_planned=plan.executions)
    rows = build_small_tables(plan)
    org_ids = [org["id"] for org in rows.organizations]
    with engine.begin() as conn:
        with audit_paused(conn, models.AUDITED_TABLES, f"seed run ({environment})"):
            small = list(rows.tables())
            for done, (name, data) in enumerate(small, start=1):
                table = models.metadata.tables[name]
                before = _seeded_count(conn, name, org_ids)
                if name == "organizations":
                    conn.execute(pg_insert(table).on_conflict_do_nothing(), data)
                else:
                    for organization_id, group in itertools.groupby(data, key=lambda r: r["organization_id"]):
                        _set_tenant(conn, organization_id)
                        conn.execute(pg_insert(table).on_conflict_do_nothing(), list(group))
                report.inserted[name] = _seeded_count(conn, name, org_ids) - before
                on_progress("tables", done, len(small), "tables")

            existing = _seeded_count(conn, "executions", org_ids)
            if existing == plan.executions:
                report.inserted["executions"] = 0
            else:
                # another scale was seeded before: the seeded executions are replaced, not mixed
                if existing:
                    report.deleted["executions"] = _delete_seeded_executions(conn, org_ids)
                copy_started = time.perf_counter()
                report.inserted["executions"] = _copy_executions(conn, executions_for(plan, rows), plan.executions,
                                                                 on_progress)
                report.copy_rows_per_s = report.inserted["executions"] / max(time.perf_counter() - copy_started, 1e-9)
        report.rows_per_organization = rows_per_organization(conn)
    report.duration_s = time.perf_counter() - started
    return report


def _delete_seeded_executions(conn: sa.Connection, organization_ids) -> int:
    low, high = seeded_range("executions")
    deleted = 0
    for organization_id in organization_ids:
        _set_tenant(conn, organization_id)
        deleted += conn.execute(
            sa.text("DELETE FROM executions WHERE id BETWEEN :low AND :high"), {"low": low, "high": high}
        ).rowcount
    return deleted


def check_clean_allowed(environment: str, confirm: bool) -> None:
    check_environment(environment)
    if not confirm:
        raise SeedRefused("seed clean deletes every seeded organization and all its data; pass --confirm")


def clean(engine: sa.Engine, environment: str, confirm: bool) -> SeedReport:
    """Remove every seeded row (and whatever hangs off seeded organizations), in one transaction."""
    check_clean_allowed(environment, confirm)
    started = time.perf_counter()
    report = SeedReport(environment=environment, executions_planned=0)
    with engine.begin() as conn:
        with audit_paused(conn, models.AUDITED_TABLES, f"seed clean ({environment})"):
            org_ids = _seeded_organizations(conn)
            for name in reversed(models.LOAD_ORDER):
                if name != "organizations":
                    report.deleted[name] = _seeded_count(conn, name, org_ids)
            low, high = seeded_range("organizations")
            # FK cascades remove each organization's rows; referential actions are not subject to RLS
            report.deleted["organizations"] = conn.execute(
                sa.text("DELETE FROM organizations WHERE id BETWEEN :low AND :high"), {"low": low, "high": high}
            ).rowcount
        report.rows_per_organization = rows_per_organization(conn)
    report.duration_s = time.perf_counter() - started
    return report


def rows_per_organization(conn: sa.Connection) -> dict[str, dict[str, int]]:
    """Rows per tenant table per organization slug (seeded or not)."""
    counts: dict[str, dict[str, int]] = {}
    orgs = conn.execute(sa.text("SELECT id, slug FROM organizations")).all()
    for organization_id, slug in orgs:
        _set_tenant(conn, organization_id)
        per_table = {}
        for name in models.TENANT_TABLES:
            per_table[name] = conn.execute(
                sa.text(f'SELECT count(*) FROM "{name}" WHERE organization_id = :org'), {"org": organization_id}
            ).scalar_one()
        counts[slug] = per_table
    return counts
