"""`retention_purge`: purge the rows past their retention policy, in bounded batches. Thin:
orchestrator_data.retention does the work, the same code `orchestrator-data retention run` runs."""

# no `from __future__ import annotations`: Dagster reads the context annotation at definition time
import dagster as dg
from pydantic import Field

from assets import keys, records
from assets._metadata import code_version, with_human_sizes
from assets._refusals import refused
from orchestrator_data.connections import ServiceNotConfigured
from orchestrator_data.retention import policies as retention_policies
from orchestrator_data.retention import purge as retention_purge_core
from orchestrator_data.retention import search as retention_search
from resources import DeploymentResource, ElasticsearchResource, PostgresResource

TABLES_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("system", "string"),
    dg.TableColumn("table", "string"),
    dg.TableColumn("delete_after", "string"),
    dg.TableColumn("past_horizon", "int", description="rows past the horizon when the run started"),
    dg.TableColumn("purged", "int", description="rows (postgres) or documents (elasticsearch) deleted"),
    dg.TableColumn("batches", "int"),
    dg.TableColumn("kept_for_sync", "int", description="audit rows past the horizon the search sync has not read"),
    dg.TableColumn("action", "string"),
])


class RetentionConfig(dg.Config):
    dry_run: bool = Field(False, description="Count what would be purged; delete nothing.")
    confirm: bool = Field(False, description="Required to purge in production (the schedule sets it).")


@dg.asset(
    name=keys.RETENTION_PURGE, group_name=keys.OPERATIONS_GROUP, kinds={"postgres", "elasticsearch"},
    owners=["team:data-platform"], deps=[keys.POSTGRES_SCHEMA], code_version=code_version(retention_policies, retention_purge_core, retention_search),
    description="Purge rows past their retention policy (retention/policies/, RETENTION_POLICY_DIR): old "
                "executions, old audit rows the search sync has read, soft-deleted workflows and marketplace items "
                "past their grace period. Bounded batches, each its own short transaction; purged executions leave "
                "search through the next sync, purged audit rows leave the audit index at once. Run config: "
                "dry_run, confirm (required in production). Metadata: rows per table and system, duration.",
)
def retention_purge(context: dg.AssetExecutionContext, config: RetentionConfig, postgres: PostgresResource,
                    elasticsearch: ElasticsearchResource, deployment: DeploymentResource) -> dg.MaterializeResult:
    production = deployment.name() == "production"
    try:  # everything that can be refused is checked before the first delete
        policies = retention_policies.load_policies(postgres.retention_directory())
        # the core's rule in the CLI's words; refused() says it in the launchpad's
        retention_purge_core.check_purge_allowed(production, config.dry_run, config.confirm)
    except (retention_policies.InvalidRetentionPolicy, retention_purge_core.RetentionRefused) as exc:
        raise refused(exc) from None
    try:
        deleter = retention_search.audit_document_deleter(elasticsearch.client, elasticsearch.layout())
    except ServiceNotConfigured:
        context.log.warning("no Elasticsearch configured: purged audit rows have no documents to delete")
        deleter = None
    report = retention_purge_core.purge(postgres.engine, policies, dry_run=config.dry_run, production=production,
                                        confirm=config.confirm, delete_documents=deleter)
    metadata = retention_metadata(report)
    context.log.info(f"{'would purge' if report.dry_run else 'purged'}: "
                     + ", ".join(f"{t.table} {t.eligible if report.dry_run else t.purged}" for t in report.tables))
    return dg.MaterializeResult(metadata=metadata)


@records.builds(keys.RETENTION_PURGE)
def retention_metadata(report: retention_purge_core.RetentionReport, live: records.Live | None = None) -> dict:
    """retention_purge's metadata: rows per table and system, and the duration (also recorded by
    `retention run`)."""
    rows = []
    for t in report.tables:
        rows.append(dg.TableRecord({
            "system": "postgres", "table": t.table, "delete_after": t.delete_after or "never",
            "past_horizon": t.eligible, "purged": t.purged, "batches": t.batches, "kept_for_sync": t.kept_for_sync,
            "action": t.action}))
        if t.search_documents_deleted:
            rows.append(dg.TableRecord({
                "system": "elasticsearch", "table": t.table, "delete_after": t.delete_after or "never",
                "past_horizon": t.purged, "purged": t.search_documents_deleted, "batches": t.batches,
                "kept_for_sync": 0, "action": "documents deleted"}))
    per_table = {f"postgres_{t.table}_{'past_horizon' if report.dry_run else 'purged'}":
                 t.eligible if report.dry_run else t.purged for t in report.tables}
    return with_human_sizes({
        "dry_run": report.dry_run,
        "rows_purged": report.rows_purged,
        **per_table,
        "elasticsearch_documents_deleted": sum(t.search_documents_deleted for t in report.tables),
        "tables": dg.MetadataValue.table(rows, schema=TABLES_COLUMNS),
        "duration_s": dg.MetadataValue.float(round(report.duration_s, 3)),
    })
