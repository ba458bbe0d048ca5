"""search_<index>_full_load: two months of each index materialized as partitions on a seeded database
and the real node; and the sync asset standing aside (skipped, not failed) while a full load runs."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.search import SEARCH_ASSET_CHECKS, SEARCH_ASSETS
from assets.search_full_load import MONTHS, SEARCH_FULL_LOAD_ASSETS
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.search import full_load, locks, sync
from orchestrator_data.search.indices import Layout, drop_indices
from resources import ElasticsearchResource, PostgresResource

pytestmark = pytest.mark.integration

MONTH_OF = {"executions": "created_at", "audit_logs": "occurred_at"}


@pytest.fixture
def resources(migrated_url, engine):
    seed(engine, "testing", SeedPlan(executions=120))  # executions from May to November 2026
    with engine.begin() as conn:  # the seed writes no audit rows: two per month
        conn.execute(sa.text("INSERT INTO audit_logs (actor_role, action, table_name, record_id, occurred_at) "
                             "SELECT 'orchestrator_owner', 'UPDATE', 'organizations', 'x', t FROM generate_series("
                             "timestamptz '2026-09-03', '2026-10-30', interval '14 days') AS t"))
    prefix = f"a{uuid.uuid4().hex[:10]}"
    elasticsearch = ElasticsearchResource(index_prefix=prefix)
    sync.create_indices(engine, elasticsearch.client, elasticsearch.layout(), ("executions", "audit_logs"))
    yield {"postgres": PostgresResource(database_url=migrated_url), "elasticsearch": elasticsearch}
    drop_indices(elasticsearch.client, Layout(prefix))
    elasticsearch.client.close()


def test_two_months_of_each_index_load_as_partitions(resources, engine):
    es, layout = resources["elasticsearch"].client, resources["elasticsearch"].layout()
    for month in ("2026-09", "2026-10"):
        window = MONTHS.time_window_for_partition_key(month)
        part = full_load.partition(month, MONTHS.start.date())
        assert (part.start, part.end) == (window.start, window.end)  # the core's month is Dagster's
        result = dg.materialize(SEARCH_FULL_LOAD_ASSETS, resources=resources, partition_key=month)
        assert result.success
        for name, column in MONTH_OF.items():
            [materialization] = result.asset_materializations_for_node(f"search_{name}_full_load")
            meta = materialization.metadata
            with engine.connect() as conn:
                rows = conn.execute(sa.text(f"SELECT count(*) FROM {name} WHERE {column} >= :start AND {column} < :end"),
                                    {"start": part.start, "end": part.end}).scalar_one()
            assert materialization.partition == meta["partition"].value == month
            assert rows > 0 and meta["rows_read"].value == meta["documents_written"].value == rows, (name, month)
            assert meta["already_current"].value == 0 and meta["documents_per_s"].value > 0
            [written] = meta["backing_indices_written"].value.records
            assert written.data == {"backing_index": es.indices.get_alias(name=layout.read_alias(name)).popitem()[0],
                                    "documents_written": rows}
            assert meta["snapshot_xmin"].value > 0 and meta["from"].value == part.start.isoformat()
            es.indices.refresh(index=layout.read_alias(name))
            assert es.count(index=layout.read_alias(name), query={"range": {
                column: {"gte": part.start.isoformat(), "lt": part.end.isoformat()}}})["count"] == rows
    again = dg.materialize(SEARCH_FULL_LOAD_ASSETS, resources=resources, partition_key="2026-09")
    meta = again.asset_materializations_for_node("search_executions_full_load")[0].metadata
    assert meta["documents_written"].value == 0 and meta["already_current"].value == meta["rows_read"].value


def test_the_sync_asset_skips_while_a_full_load_holds_the_index(resources, engine):
    alias = resources["elasticsearch"].layout().read_alias("executions")
    with locks.index_lock(engine, alias, shared=True):  # a partition at work
        result = dg.materialize([*SEARCH_ASSETS, *SEARCH_ASSET_CHECKS], resources=resources,
                                selection=dg.AssetSelection.assets("search_executions_documents"))
    assert result.success and result.asset_materializations_for_node("search_executions_documents") == []
    [observation] = result.asset_observations_for_node("search_executions_documents")
    assert "a full load of" in observation.metadata["skipped"].value
    assert result.get_asset_check_evaluations() == []  # the reconciliation waits for a real sync
    done = dg.materialize([*SEARCH_ASSETS, *SEARCH_ASSET_CHECKS], resources=resources,
                          selection=dg.AssetSelection.assets("search_executions_documents"))
    assert done.asset_materializations_for_node("search_executions_documents")[0].metadata["mode"].value == "full"
