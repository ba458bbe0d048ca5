"""The search indices as assets: per index, `search_<index>_index` (templates, backing index, aliases)
and, for the four fed from PostgreSQL, `search_<index>_documents` (the sync) with a reconciliation
check. Thin: orchestrator_data.search does the work, the same code `orchestrator-data search` runs."""

# no `from __future__ import annotations`: Dagster reads the context annotation at definition time
from datetime import timedelta

import dagster as dg

from assets import keys, records
from assets._metadata import code_version, with_human_sizes
from assets._runbook import runbook_metadata
from orchestrator_data.runbook import described
from orchestrator_data.search import bulk, indices, reconcile, sources, status, sync, watermarks
from orchestrator_data.search.errors import SyncDeferred, SyncError
from orchestrator_data.search.indices import NAMES
from orchestrator_data.search.reports import SyncReport
from orchestrator_data.search.sources import SYNCED
from resources import ElasticsearchResource, PostgresResource

BACKING_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("backing_index", "string"),
    dg.TableColumn("write_index", "bool"),
])
# search_sync_schedule runs every 5 minutes: documents more than 30 minutes behind their rows mean the
# sync is stopped or failing (15 minutes: a warning). The policy shows it on the asset page; the
# freshness check measures the lag itself (changes not yet applied, the age of the oldest).
SYNC_LAG_LIMIT = timedelta(minutes=30)
DOCUMENTS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=SYNC_LAG_LIMIT, warn_window=timedelta(minutes=15))
DIFFERENCE_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("organization", "string"),
    dg.TableColumn("postgres_rows", "int"),
    dg.TableColumn("documents", "int"),
])


def index_metadata(report: status.IndexReport) -> dict:
    metadata = {
        "alias": report.alias,
        "mapping_version": report.mapping_version or 0,
        "documents": report.documents,
        "size_bytes": dg.MetadataValue.int(report.size_bytes),
        "backing_indices": dg.MetadataValue.table(
            records=[dg.TableRecord({"backing_index": i, "write_index": i == report.write_index})
                     for i in report.backing_indices], schema=BACKING_COLUMNS),
        "dagster/row_count": report.documents,
    }
    if report.synced:
        metadata |= {"postgres_rows": report.postgres_rows or 0, "lag_rows": report.lag_rows or 0,
                     "lag_seconds": dg.MetadataValue.float(float(report.lag_seconds or 0.0)),
                     "state": report.describe()}
    return with_human_sizes(metadata)


def index_init_metadata(report: status.IndexReport, made: indices.IndexInit) -> dict:
    """search_<index>_index's metadata (also recorded by `search init`, `init` and `reset`)."""
    return index_metadata(report) | {"created_now": made.created, "needs_reindex": made.needs_reindex}


def documents_metadata(report: status.IndexReport, done: SyncReport) -> dict:
    """search_<index>_documents' metadata (also recorded by `search sync`)."""
    return index_metadata(report) | {
        "mode": done.mode,
        "documents_written": done.documents_written,
        "documents_deleted": done.documents_deleted,
        "already_current": done.stale_skipped,
        "documents_per_s": dg.MetadataValue.float(round(done.documents_per_s, 1)),
        "duration_s": dg.MetadataValue.float(round(done.duration_s, 3)),
        "watermark": done.watermark_to,
        # a rebuild says why: which tables were rewritten behind the audit trail, and by what
        **({"rebuilt_because": done.reason} if done.reason else {}),
    }


@records.builds(*keys.index_keys(NAMES))
def index_init_record(made: indices.IndexInit, live: records.Live) -> dict:
    report = status.index_report(None, live.elasticsearch.client, live.elasticsearch.layout(), made.name)
    return index_init_metadata(report, made)


@records.builds(*keys.documents_keys(SYNCED))
def documents_record(done: SyncReport, live: records.Live) -> dict:
    """The documents' metadata after a sync, counted once the sync's writes are searchable."""
    layout = live.elasticsearch.layout()
    live.elasticsearch.client.indices.refresh(index=layout.read_alias(done.index))
    report = status.index_report(live.postgres.engine, live.elasticsearch.client, layout, done.index)
    return documents_metadata(report, done)


def _index_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=keys.index_key(name), group_name=keys.SEARCH_GROUP, kinds={"elasticsearch"},
        owners=["team:data-platform"], deps=[keys.POSTGRES_SCHEMA], code_version=code_version(indices, sync, watermarks),
        description=f"The {name} index: its template (mapping from the package's data file), its first backing "
                    f"index and its read and write aliases; idempotent. Metadata: alias, mapping version, "
                    f"backing indices, documents, size.",
    )
    def _asset(postgres: PostgresResource, elasticsearch: ElasticsearchResource) -> dg.MaterializeResult:
        target = elasticsearch.target()
        [made] = sync.create_indices(postgres.engine, target.client, target.layout, (name,), shards=target.shards,
                              replicas=target.replicas)
        return dg.MaterializeResult(metadata=index_init_record(made, records.Live(elasticsearch=elasticsearch)))
    return _asset


def _documents_asset(name: str) -> dg.AssetsDefinition:
    # output_required=False: while a full load by month holds the index (or has begun and does not cover
    # every row yet) the step skips instead of failing every 5 minutes; its reconciliation check is then
    # skipped too (the counts are meant to differ mid-load)
    @dg.asset(
        name=keys.documents_key(name), group_name=keys.SEARCH_GROUP, kinds={"elasticsearch", "postgres"},
        owners=["team:data-platform"], deps=[keys.index_key(name), keys.SEED_DATA], code_version=code_version(sync, sources, bulk, watermarks),
        output_required=False, freshness_policy=DOCUMENTS_FRESHNESS,
        description=f"The {name} documents, synced from PostgreSQL: incremental from the watermark (full when "
                    f"never synced), deletes included, versions from the rows. Skipped (an observation says why) "
                    f"while a full load by month is under way. Metadata: documents written and deleted, "
                    f"documents/s, lag, index size, mapping version, backing indices.",
    )
    def _asset(context: dg.AssetExecutionContext, postgres: PostgresResource,
               elasticsearch: ElasticsearchResource):
        layout = elasticsearch.layout()
        try:
            done = sync.sync_index(postgres.engine, elasticsearch.client, layout, name)
        except SyncDeferred as exc:
            context.log.warning(f"{name}: skipped: {exc}")
            context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata={"skipped": str(exc)}))
            return
        except SyncError as exc:
            raise dg.Failure(description=str(exc)) from None
        context.log.info(f"{name}: {done.mode} sync, {done.documents_written} written, {done.documents_deleted} deleted")
        yield dg.MaterializeResult(metadata=documents_record(done, records.Live(postgres=postgres,
                                                                                  elasticsearch=elasticsearch)))
    return _asset


def repair_command(name: str) -> str:
    """What brings an index back to PostgreSQL's rows, whatever differs (a rebuild from the rows)."""
    return f"orchestrator-data search sync --full --index {name}"


def _reconciliation_check(name: str) -> dg.AssetChecksDefinition:
    section = keys.RECONCILIATION_SECTION

    # blocking: a bootstrap or a sync whose index differs from PostgreSQL fails its run (and alerts),
    # instead of ending green on a wrong index
    @dg.asset_check(
        asset=keys.documents_key(name), name=keys.RECONCILIATION, blocking=True,
        metadata=runbook_metadata(section),
        description=described(f"{name}: documents per organization equal PostgreSQL's rows per organization, and "
                              f"a sample of documents equals the rows they come from (`{repair_command(name)}` "
                              f"rebuilds the index from the rows). Blocking: a failure fails the run.", section),
    )
    def _check(postgres: PostgresResource, elasticsearch: ElasticsearchResource) -> dg.AssetCheckResult:
        layout = elasticsearch.layout()
        found = reconcile.reconcile(postgres.engine, elasticsearch.client, layout, name)
        if found.ok:
            description = (f"{name}: {found.documents:,} documents equal {found.postgres_rows:,} rows in "
                           f"{found.organizations:,} organization(s); {found.sampled:,} sampled documents equal")
        else:
            differs = reconcile.discrepancies(postgres.engine, elasticsearch.client, layout, name, found)
            description = f"{differs.describe()}; repair: {repair_command(name)}"
        return dg.AssetCheckResult(passed=found.ok, description=description, metadata={
            "postgres_rows": found.postgres_rows, "documents": found.documents,
            "organizations": found.organizations,
            "organizations_differing": dg.MetadataValue.table(
                records=[dg.TableRecord({"organization": org, "postgres_rows": pg, "documents": es})
                         for org, (pg, es) in list(found.count_differences.items())[:50]],
                schema=DIFFERENCE_COLUMNS),
            "sampled": found.sampled, "sample_hash": found.sample_hash,
            "sample_differences": dg.MetadataValue.md("\n".join(f"- {d}" for d in found.sample_differences[:50])
                                                      or "none"),
            **runbook_metadata(section),
        })
    return _check


def _freshness_check(name: str) -> dg.AssetChecksDefinition:
    section = keys.check_section("search documents", keys.FRESHNESS)
    limit_s = SYNC_LAG_LIMIT.total_seconds()

    @dg.asset_check(
        asset=keys.documents_key(name), name=keys.FRESHNESS, metadata=runbook_metadata(section),
        description=described(f"{name}: the oldest change not yet in the index is less than "
                              f"{limit_s / 60:.0f} minutes old (the sync runs every 5 minutes).", section),
    )
    def _check(postgres: PostgresResource, elasticsearch: ElasticsearchResource) -> dg.AssetCheckResult:
        report = status.index_report(postgres.engine, elasticsearch.client, elasticsearch.layout(), name)
        lag_s = report.lag_seconds
        passed = lag_s is not None and lag_s <= limit_s
        if lag_s is None:
            description = f"{name}: never synced ({report.lag_rows or 0:,} rows behind); repair: orchestrator-data " \
                          f"search sync --index {name}, and turn search_sync_schedule on"
        else:
            description = (f"{name}: {report.lag_rows or 0:,} change(s) behind, the oldest {lag_s / 60:.1f} min old "
                           f"(limit {limit_s / 60:.0f} min)")
            if not passed:
                description += f"; repair: orchestrator-data search sync --index {name}, and check search_sync_schedule"
        return dg.AssetCheckResult(passed=passed, description=description, metadata={
            "lag_rows": report.lag_rows or 0,
            "lag_seconds": dg.MetadataValue.float(float(lag_s) if lag_s is not None else -1.0),
            "limit_seconds": dg.MetadataValue.float(limit_s),
            **runbook_metadata(section),
        })
    return _check


SEARCH_INDEX_ASSETS = [_index_asset(name) for name in NAMES]
SEARCH_DOCUMENT_ASSETS = [_documents_asset(name) for name in SYNCED]
SEARCH_ASSETS = [*SEARCH_INDEX_ASSETS, *SEARCH_DOCUMENT_ASSETS]
SEARCH_ASSET_CHECKS = [*[_reconciliation_check(name) for name in SYNCED],
                       *[_freshness_check(name) for name in SYNCED]]
