"""Dagster's own instance storage in PostgreSQL, found the way every other command finds it.

dagster.yaml names this class instead of dagster-postgres's, so that `dagster dev -w workspace.yaml`
works with nothing exported: the URL is DAGSTER_PG_URL when set (environment or .env files), else
the local stack's `dagster` database. Either way it is turned into the psycopg2 form that
dagster-postgres needs (docs/architecture.md, pitfalls), and it never appears in the instance's config.
"""

from __future__ import annotations

from dagster import Field, StringSource
from dagster_postgres import DagsterPostgresStorage

from orchestrator_data.connections import resolve_url
from orchestrator_data.settings import load_settings
from orchestrator_data.urls import dagster_postgres_url


class OrchestratorPostgresStorage(DagsterPostgresStorage):
    @classmethod
    def config_type(cls):
        return {
            "postgres_url": Field(StringSource, is_required=False,
                                  description="Overrides DAGSTER_PG_URL and the local stack."),
            "should_autocreate_tables": Field(bool, is_required=False, default_value=True),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        url = config_value.get("postgres_url") or resolve_url("dagster", load_settings())
        return cls(
            inst_data=inst_data,
            postgres_url=dagster_postgres_url(url),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
        )
