"""The full load of the executions and audit_logs indices as assets partitioned by month
(`search_<index>_full_load`): a backfill runs one step per month on whatever executor the job has,
and any month can be materialized again alone. Thin: orchestrator_data.search.full_load does the
work, the same code `orchestrator-data search load` runs. Never scheduled: the incremental sync
(`search_<index>_documents`) keeps the indices current."""

# no `from __future__ import annotations`: Dagster reads the context annotation at definition time
import dagster as dg

from assets import keys, records
from assets._metadata import code_version
from orchestrator_data.search import bulk, full_load, sources, sync
from orchestrator_data.search.errors import SearchError
from orchestrator_data.settings import load_settings
from resources import ElasticsearchResource, PostgresResource

WRITTEN_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("backing_index", "string"),
    dg.TableColumn("documents_written", "int"),
])


def months() -> dg.MonthlyPartitionsDefinition:
    """One partition per month (UTC) from SEARCH_PARTITIONS_START to the current month, keys YYYY-MM as
    `search load --month` takes them. Shared by both assets, so one backfill covers both."""
    start = load_settings().search_partitions_start
    return dg.MonthlyPartitionsDefinition(start_date=f"{start:%Y-%m}", fmt="%Y-%m", end_offset=1)


MONTHS = months()


@records.builds(*(keys.full_load_key(name) for name in full_load.PARTITIONED))
def full_load_metadata(done: full_load.PartitionReport, live: records.Live | None = None) -> dict:
    """search_<index>_full_load's metadata for one month (also recorded by `search load`)."""
    return {
        "partition": done.partition,
        "from": done.start.isoformat() if done.start else "open (every older row)",
        "until": done.end.isoformat() if done.end else "open (every later row)",
        "documents_written": done.documents_written,
        "already_current": done.already_current,
        "rows_read": done.rows_read,
        "documents_per_s": dg.MetadataValue.float(round(done.documents_per_s, 1)),
        "duration_s": dg.MetadataValue.float(round(done.duration_s, 3)),
        "backing_indices_written": dg.MetadataValue.table(
            records=[dg.TableRecord({"backing_index": index, "documents_written": count})
                     for index, count in done.written_to.items()], schema=WRITTEN_COLUMNS),
        "snapshot_xmin": done.snapshot_xmin,
        "dagster/row_count": done.rows_read,
    }


def _full_load_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=keys.full_load_key(name), group_name=keys.SEARCH_GROUP, partitions_def=MONTHS,
        kinds={"elasticsearch", "postgres"}, owners=["team:data-platform"], deps=[keys.index_key(name)],
        code_version=code_version(full_load, sync, sources, bulk),
        description=f"The full load of the {name} index, one month per partition (the first also loads every "
                    f"older row, the current one every later row): one snapshot, versions from the rows, so a "
                    f"re-run writes nothing new. Runs beside other months, never during a sync, rollover or "
                    f"snapshot of the index. Never moves the watermark. Metadata: documents written, already "
                    f"current, rows read, documents/s, backing indices written, snapshot xmin.",
    )
    def _asset(context: dg.AssetExecutionContext, postgres: PostgresResource,
               elasticsearch: ElasticsearchResource) -> dg.MaterializeResult:
        try:
            part = full_load.partition(context.partition_key, MONTHS.start.date())
            done = full_load.load_partition(postgres.engine, elasticsearch.client, elasticsearch.layout(), name, part)
        except SearchError as exc:  # the index busy or missing, a month without partition, Elasticsearch
            raise dg.Failure(description=str(exc)) from None
        context.log.info(f"{name} {part.key}: {done.rows_read} rows, {done.documents_written} written, "
                         f"{done.already_current} already current")
        return dg.MaterializeResult(metadata=full_load_metadata(done))
    return _asset


SEARCH_FULL_LOAD_ASSETS = [_full_load_asset(name) for name in full_load.PARTITIONED]
