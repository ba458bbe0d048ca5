"""reset_job: drop and recreate the data layer, as `orchestrator-data reset --confirm` does."""

import dagster as dg
from pydantic import Field

from jobs import queue_tags
from jobs.queue_tags import LIVE_SCHEMA_TAGS, MIGRATION_TAGS, RESET_TAGS, SEARCH_FULL_LOAD_KEY, sync_tags, tags
from orchestrator_data import provisioning
from orchestrator_data.search.sources import SYNCED
from resources import DeploymentResource, ElasticsearchResource, PostgresResource, RedisResource


class ResetConfig(dg.Config):
    confirm: bool = Field(False, description="Must be true: the reset drops every table and registered key.")


@dg.op(description="Drop every application table (roles stay), registered Redis key and search index, then "
                   "migrate to head, set the keyspace up and create the indices again. Refused in production and "
                   "without confirm.")
def reset_data_layer(context: dg.OpExecutionContext, config: ResetConfig, postgres: PostgresResource,
                     redis: RedisResource, elasticsearch: ElasticsearchResource, deployment: DeploymentResource):
    # the queue cannot keep a reset from a search full load without serializing the load's partitions
    # (jobs/queue_tags.py): refuse here instead, before anything is dropped
    loading = queue_tags.runs_in_progress(context.instance, SEARCH_FULL_LOAD_KEY)
    if loading:
        raise dg.Failure(description=f"refusing to reset while {len(loading)} search full load run(s) are in "
                                     f"progress ({', '.join(loading[:3])}): let them finish or cancel them, then "
                                     "reset")
    environment = deployment.name()
    try:
        report = provisioning.reset(environment, config.confirm, postgres.engine, redis.client,
                                    elasticsearch.target())
    except provisioning.ResetRefused as exc:
        raise dg.Failure(description=str(exc)) from None
    migration = report.init.migration
    yield dg.AssetMaterialization(
        asset_key="postgres_schema",
        description="recreated by reset_job",
        metadata={"dropped": dg.MetadataValue.json(report.dropped_tables),
                  "head_revision": migration.end_revision or "base",
                  "applied": dg.MetadataValue.json(migration.applied_revisions)},
    )
    yield dg.AssetMaterialization(
        asset_key="redis_keyspace", description="registered keys deleted by reset_job",
        metadata={"keys_deleted": report.redis_keys_deleted},
    )
    for index in report.init.search or []:
        yield dg.AssetMaterialization(
            asset_key=f"search_{index.name}_index", description="dropped and created empty by reset_job",
            metadata={"write_index": index.write_index, "mapping_version": index.mapping_version,
                      "indices_dropped": len(report.search_indices_deleted)},
        )
    yield dg.Output(None)


# it migrates, drops and recreates every synced index, and drops the schema under backups and restore
# checks: it carries every limited tag (jobs/queue_tags.py), and its own for a full load to look for
@dg.job(description="Drop and recreate PostgreSQL's schema, the Redis keyspace and the search indices (run "
                    "config: confirm: true). Refused in production.",
        tags=tags(MIGRATION_TAGS, sync_tags(SYNCED), LIVE_SCHEMA_TAGS, RESET_TAGS))
def reset_job():
    reset_data_layer()
