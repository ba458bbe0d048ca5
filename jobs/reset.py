"""reset_job: drop and recreate the data layer, as `orchestrator-data reset --confirm` does."""

import dagster as dg
from pydantic import Field

from assets import keys, records
from assets._refusals import refused
from assets._runbook import runbook_metadata
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
        raise refused(exc) from None
    # the assets' own metadata, through the builders `orchestrator-data reset` records with
    live = records.Live(postgres=postgres, redis=redis, elasticsearch=elasticsearch)
    for asset, done in keys.provisioned(report.init):
        yield dg.AssetMaterialization(asset_key=asset, description="dropped and recreated by reset_job",
                                      metadata=records.metadata(asset, done, live))
    yield dg.Output(None, metadata={"tables_dropped": dg.MetadataValue.json(report.dropped_tables),
                                    "redis_keys_deleted": report.redis_keys_deleted,
                                    "search_indices_dropped": dg.MetadataValue.json(report.search_indices_deleted)})


# it migrates, drops and recreates every synced index, and drops the schema under backups and restore
# checks: it carries every limited tag (jobs/queue_tags.py), and its own for a full load to look for
@dg.job(description="Drop and recreate PostgreSQL's schema, the Redis keyspace and the search indices (run "
                    "config: confirm: true). Refused in production.",
        tags=tags(MIGRATION_TAGS, sync_tags(SYNCED), LIVE_SCHEMA_TAGS, RESET_TAGS), metadata=runbook_metadata("reset_job"))
def reset_job():
    reset_data_layer()
