"""The seed: deterministic, realistic demo and test data in PostgreSQL."""

import dagster as dg
from pydantic import Field

from assets import keys, records
from assets._metadata import code_version
from assets._refusals import refused
from orchestrator_data.postgres import models
from orchestrator_data.postgres import seed as seeding
from orchestrator_data.postgres import seed_data as seed_plans
from orchestrator_data.postgres.seed import DEFAULT_SCALE, SeedRefused, seed
from orchestrator_data.postgres.seed_data import SeedPlan
from resources import DeploymentResource, PostgresResource


class SeedConfig(dg.Config):
    scale: int | None = Field(None, description="Number of executions (default: 20,000 development, 2,000 testing).")
    environment: str | None = Field(None, description="development or testing (default: ENVIRONMENT).")


ROWS_COLUMNS = dg.TableSchema(columns=[dg.TableColumn("table", "string"), dg.TableColumn("rows", "int")])


def _rows_table(rows: dict[str, int]) -> dg.MetadataValue:
    return dg.MetadataValue.table(records=[dg.TableRecord({"table": t, "rows": n}) for t, n in rows.items()],
                                  schema=ROWS_COLUMNS)


def _per_organization_table(rows_per_organization: dict[str, dict[str, int]]) -> dg.MetadataValue:
    columns = [dg.TableColumn("organization", "string")] + [dg.TableColumn(t, "int") for t in models.TENANT_TABLES]
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"organization": slug, **counts}) for slug, counts in sorted(rows_per_organization.items())],
        schema=dg.TableSchema(columns=columns),
    )


@records.builds(keys.SEED_DATA)
def seed_metadata(report: seeding.SeedReport, live: records.Live | None = None) -> dict:
    """seed_data's metadata (also recorded by `seed run` and `seed clean`)."""
    totals = {table: sum(per[table] for per in report.rows_per_organization.values()) for table in models.TENANT_TABLES}
    metadata = {
        "environment": report.environment,
        "executions_planned": report.executions_planned,
        "rows_per_organization": _per_organization_table(report.rows_per_organization),
        "inserted_this_run": _rows_table(report.inserted),
        "rows_inserted": report.total_inserted,
        # always there, 0 when a run found everything seeded, so the UI's plot has no gaps
        "rows_per_s": dg.MetadataValue.float(round(report.total_inserted / report.duration_s, 1)
                                             if report.duration_s > 0 else 0.0),
        "organizations": len(report.rows_per_organization),
        "dagster/row_count": sum(totals.values()) + len(report.rows_per_organization),
        "duration_s": dg.MetadataValue.float(round(report.duration_s, 3)),
    }
    if report.deleted:
        metadata["deleted_this_run"] = _rows_table(report.deleted)  # replaced by another scale, or cleaned
    if report.copy_rows_per_s:
        metadata["copy_rows_per_s"] = dg.MetadataValue.float(round(report.copy_rows_per_s, 1))
    return metadata


@dg.asset(
    name=keys.SEED_DATA,
    group_name=keys.POSTGRES_GROUP,
    kinds={"postgres"},
    owners=["team:data-platform"],
    deps=[keys.POSTGRES_SCHEMA],
    code_version=code_version(seeding, seed_plans),
    description="Deterministic seed data (fixed random seed): organizations, users, roles, workflows with "
                "versions, months of executions with a realistic status mix, marketplace items. Idempotent: a "
                "second run adds nothing. Refused in production.",
)
def seed_data(config: SeedConfig, postgres: PostgresResource, deployment: DeploymentResource) -> dg.MaterializeResult:
    environment = config.environment or deployment.name()
    plan = SeedPlan(executions=config.scale or DEFAULT_SCALE.get(environment, 0))
    try:
        report = seed(postgres.engine, environment, plan)
    except SeedRefused as exc:
        raise refused(exc) from None
    return dg.MaterializeResult(metadata=seed_metadata(report))
