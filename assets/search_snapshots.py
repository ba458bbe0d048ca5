"""Snapshots of the search indices as assets: `search_snapshot` (after every index asset; creates, then
prunes), `search_snapshot_restore_check` (restores it into renamed indices and compares), and the
freshness of both promises. Thin: orchestrator_data.search.snapshots does the work, the same code
`orchestrator-data search snapshot` runs. Failures raise dg.Failure with one line, which the
run-failure alert sensor passes on."""

# no `from __future__ import annotations`: Dagster reads the context annotation at definition time
from datetime import timedelta

import dagster as dg

from assets import keys, records
from assets._metadata import code_version, with_human_sizes
from assets._runbook import runbook_metadata
from assets.backups import freshness_check_result
from orchestrator_data.runbook import described
from orchestrator_data.search import snapshot_checks, snapshots
from orchestrator_data.search.errors import SearchError
from orchestrator_data.search.indices import NAMES
from orchestrator_data.search.sources import SYNCED
from orchestrator_data.settings import Settings
from resources import ElasticsearchResource, PostgresResource

INDEX_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("backing_index", "string"),
    dg.TableColumn("documents", "int", description="recorded in the snapshot's metadata"),
])
CHECK_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("index", "string"),
    dg.TableColumn("recorded", "int", description="documents the snapshot recorded"),
    dg.TableColumn("restored", "int", description="documents in the restored copies"),
    dg.TableColumn("live", "int", description="documents in the live index now"),
    dg.TableColumn("sampled", "int"),
    dg.TableColumn("equal", "int", description="sampled documents equal to the live ones"),
    dg.TableColumn("changed", "int", description="sampled documents updated or deleted live since the snapshot"),
    dg.TableColumn("ok", "bool"),
])
PROBLEMS_SHOWN = 5

# The promises as freshness policies, as the PostgreSQL backups have them (assets/backups.py), at
# their default windows; the checks and the sensor judge the configured ones.
SNAPSHOT_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=Settings.model_fields["search_snapshot_max_age_hours"].default),
    warn_window=timedelta(hours=Settings.model_fields["search_snapshot_max_age_hours"].default - 2))
SNAPSHOT_RESTORE_CHECK_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=Settings.model_fields["search_restore_check_max_age_days"].default),
    warn_window=timedelta(days=7))
SNAPSHOT_FRESHNESS_SECTION = keys.check_section(keys.SEARCH_SNAPSHOT, keys.FRESHNESS)
RESTORE_CHECK_FRESHNESS_SECTION = keys.check_section(keys.SEARCH_SNAPSHOT_RESTORE_CHECK, keys.FRESHNESS)


def snapshot_metadata(info: "snapshots.SnapshotInfo", repository_name: str, pruned: list[str]) -> dict:
    """search_snapshot's metadata (also recorded by `search snapshot create`)."""
    return with_human_sizes({
        "snapshot": info.name,
        "repository": repository_name,
        "indices": dg.MetadataValue.table(
            records=[dg.TableRecord({"backing_index": key, "documents": count}) for key, count in info.recorded.items()],
            schema=INDEX_COLUMNS),
        "documents": info.documents,
        "size_bytes": dg.MetadataValue.int(info.size_bytes or 0),
        "duration_s": dg.MetadataValue.float(float(info.duration_s or 0.0)),
        "pruned": dg.MetadataValue.md("\n".join(f"- {name}" for name in pruned) or "none"),
        "dagster/row_count": info.documents,
    })


@records.builds(keys.SEARCH_SNAPSHOT)
def snapshot_record(info: "snapshots.SnapshotInfo", live: records.Live) -> dict:
    # a snapshot created outside the asset pruned nothing
    return snapshot_metadata(info, live.elasticsearch.snapshot_repository_of().name, [])


@dg.asset(
    name=keys.SEARCH_SNAPSHOT, group_name=keys.BACKUPS_GROUP, kinds={"elasticsearch"}, owners=["team:data-platform"],
    # what a snapshot holds: every index and the documents synced into it, so the graph shows what is inside
    deps=[*keys.index_keys(NAMES), *keys.documents_keys(SYNCED), keys.SYSTEM_METRICS],
    code_version=code_version(snapshots), freshness_policy=SNAPSHOT_FRESHNESS,
    description="A snapshot of every search index in the fs repository (SEARCH_SNAPSHOT_REPOSITORY at "
                "SEARCH_SNAPSHOT_LOCATION), with exact document counts recorded under the indices' sync locks; "
                "then retention keeps the newest SEARCH_SNAPSHOT_KEEP successful ones. Metadata: snapshot, "
                "indices, documents, size, duration, pruned.",
)
def search_snapshot(context: dg.AssetExecutionContext, postgres: PostgresResource,
                    elasticsearch: ElasticsearchResource) -> dg.MaterializeResult:
    repository = elasticsearch.snapshot_repository_of()
    try:
        info = snapshots.create_snapshot(postgres.engine, elasticsearch.client, elasticsearch.layout(), repository)
        pruned = snapshots.prune(elasticsearch.client, repository, elasticsearch.layout(),
                                 elasticsearch.snapshots_kept())
    except SearchError as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(f"snapshot {info.name}: {info.documents} documents, {info.size_bytes} bytes; "
                     f"pruned {len(pruned.deleted)}")
    return dg.MaterializeResult(metadata=snapshot_metadata(info, repository.name, pruned.deleted))


@records.builds(keys.SEARCH_SNAPSHOT_RESTORE_CHECK)
def snapshot_check_metadata(result: "snapshot_checks.RestoreCheckResult", live: records.Live | None = None) -> dict:
    """search_snapshot_restore_check's metadata (also recorded by `search snapshot restore-check`)."""
    return {
        "snapshot": result.snapshot,
        "result": "passed" if result.ok else "failed",
        "indices": dg.MetadataValue.table(
            records=[dg.TableRecord({"index": c.index, "recorded": c.recorded, "restored": c.restored, "live": c.live,
                                     "sampled": c.sampled, "equal": c.equal, "changed": c.changed, "ok": c.ok})
                     for c in result.indices], schema=CHECK_COLUMNS),
        "restore_duration_s": dg.MetadataValue.float(round(result.restore_duration_s, 3)),
        "duration_s": dg.MetadataValue.float(round(result.duration_s, 3)),
        "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in result.problems[:50]) or "none"),
    }


@dg.asset(
    name=keys.SEARCH_SNAPSHOT_RESTORE_CHECK, group_name=keys.BACKUPS_GROUP, kinds={"elasticsearch"},
    owners=["team:data-platform"], deps=[search_snapshot], code_version=code_version(snapshots, snapshot_checks),
    freshness_policy=SNAPSHOT_RESTORE_CHECK_FRESHNESS,
    description="Restores the newest successful snapshot into renamed indices (no aliases), compares each "
                "index's documents with the counts the snapshot recorded and a sample of documents with the live "
                "ones, records the result in PostgreSQL and always deletes the copies; fails the run when the check "
                "fails. Metadata: per index recorded/restored/live/sampled/equal/changed, result, duration.",
)
def search_snapshot_restore_check(context: dg.AssetExecutionContext, postgres: PostgresResource,
                                  elasticsearch: ElasticsearchResource) -> dg.MaterializeResult:
    try:
        result = snapshot_checks.restore_check(postgres.engine, elasticsearch.client, elasticsearch.layout(),
                                         elasticsearch.snapshot_repository_of(), "latest")
    except SearchError as exc:
        raise dg.Failure(description=str(exc)) from None
    metadata = snapshot_check_metadata(result)
    if not result.ok:
        shown = "; ".join(result.problems[:PROBLEMS_SHOWN])
        raise dg.Failure(description=f"restore check of {result.snapshot} failed: {shown}", metadata=metadata)
    context.log.info(f"restore check of {result.snapshot} passed in {result.duration_s:.1f} s")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=search_snapshot, name=keys.FRESHNESS, metadata=runbook_metadata(SNAPSHOT_FRESHNESS_SECTION),
                description=described("The newest successful search snapshot is younger than "
                                      "SEARCH_SNAPSHOT_MAX_AGE_HOURS (default 26: a daily snapshot plus slack).",
                                      SNAPSHOT_FRESHNESS_SECTION))
def check_search_snapshot_freshness(elasticsearch: ElasticsearchResource) -> dg.AssetCheckResult:
    return freshness_check_result(snapshots.snapshot_freshness(
        elasticsearch.client, elasticsearch.snapshot_repository_of(), elasticsearch.layout(),
        elasticsearch.settings.search_snapshot_max_age_hours), SNAPSHOT_FRESHNESS_SECTION,
        "orchestrator-data search snapshot create, and turn daily_search_snapshot_schedule on")


@dg.asset_check(asset=search_snapshot_restore_check, name=keys.FRESHNESS,
                metadata=runbook_metadata(RESTORE_CHECK_FRESHNESS_SECTION),
                description=described("The newest search snapshot whose restore check passed is younger than "
                                      "SEARCH_RESTORE_CHECK_MAX_AGE_DAYS (default 8).",
                                      RESTORE_CHECK_FRESHNESS_SECTION))
def check_search_restore_check_freshness(postgres: PostgresResource,
                                         elasticsearch: ElasticsearchResource) -> dg.AssetCheckResult:
    return freshness_check_result(snapshot_checks.restore_check_freshness(
        postgres.engine, elasticsearch.snapshot_repository_of(), elasticsearch.layout(),
        24 * elasticsearch.settings.search_restore_check_max_age_days), RESTORE_CHECK_FRESHNESS_SECTION,
        "orchestrator-data search snapshot restore-check latest")


SEARCH_SNAPSHOT_ASSETS = [search_snapshot, search_snapshot_restore_check]
SEARCH_SNAPSHOT_ASSET_CHECKS = [check_search_snapshot_freshness, check_search_restore_check_freshness]
