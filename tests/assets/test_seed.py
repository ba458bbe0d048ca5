"""seed_data materialized with Dagster on a fresh database."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.postgres import postgres_schema
from assets.seed import seed_data
from resources import DeploymentResource, PostgresResource
from tests.databases import fresh_database

pytestmark = pytest.mark.integration


def test_seed_data_records_rows_per_organization(stack):
    with fresh_database(stack, prefix="asset_seed") as url:
        resources = {"postgres": PostgresResource(database_url=url), "deployment": DeploymentResource()}
        config = dg.RunConfig(ops={"seed_data": {"config": {"scale": 600, "environment": "testing"}}})
        result = dg.materialize([postgres_schema, seed_data], resources=resources, run_config=config)
        assert result.success
        [event] = result.asset_materializations_for_node("seed_data")
        metadata = event.metadata
        records = metadata["rows_per_organization"].value.records
        assert len(records) >= 5
        assert sum(r.data["executions"] for r in records) == 600
        inserted = {r.data["table"]: r.data["rows"] for r in metadata["inserted_this_run"].value.records}
        assert inserted["executions"] == 600 and metadata["rows_inserted"].value == sum(inserted.values())
        assert metadata["rows_per_s"].value > 0
        assert metadata["dagster/row_count"].value > 600

        again = dg.materialize([seed_data], resources=resources, run_config=config)
        [event] = again.asset_materializations_for_node("seed_data")
        assert sum(r.data["rows"] for r in event.metadata["inserted_this_run"].value.records) == 0
        assert event.metadata["rows_per_s"].value == 0.0  # reported every run, so the plot has no gaps


def test_seed_data_refuses_production(stack):
    with fresh_database(stack, prefix="asset_seed") as url:
        resources = {"postgres": PostgresResource(database_url=url), "deployment": DeploymentResource()}
        config = dg.RunConfig(ops={"seed_data": {"config": {"environment": "production"}}})
        result = dg.materialize([postgres_schema, seed_data], resources=resources, run_config=config,
                                raise_on_error=False)
        assert not result.success
        failure = result.failure_data_for_node("seed_data")
        assert "refused in the 'production' environment" in failure.user_failure_data.description
