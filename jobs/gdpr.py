"""gdpr_export_job and gdpr_erase_job: the op jobs behind `orchestrator-data gdpr export|erase`.

Their config is checked first thing in the op, before anything is read or changed: the user id's
form (a malformed one is never echoed: it may be an e-mail pasted by mistake), then the production
guard. Metadata holds counts, the file and the duration — never the person's data."""

import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets._refusals import refused, set_config
from assets._runbook import runbook_metadata
from jobs.queue_tags import sync_tags
from orchestrator_data import gdpr
from orchestrator_data.gdpr import erase as erase_core
from orchestrator_data.gdpr import export as export_core
from orchestrator_data.stack.common import write_atomically
from orchestrator_data.gdpr.ledger import ErasureLedger, LedgerError
from resources import BackupStorageResource, DeploymentResource, ElasticsearchResource, PostgresResource, RedisResource


def _valid_user_id(value: str) -> str:
    try:
        return str(gdpr.user_id(value))
    except gdpr.InvalidUserId as exc:
        raise dg.Failure(description=f"user_id: {exc}") from None


class _UserConfig(dg.Config):
    user_id: str = Field(description="The user's id (a UUID).")
    requested_by: str = Field(description="Who asks (recorded in the audit trail or the erasure ledger).")


class GdprExportConfig(_UserConfig):
    output: str = Field(description="The JSON file to write (mode 0600); the document never goes into metadata.")


class GdprEraseConfig(_UserConfig):
    confirm: bool = Field(False, description="Required in production: the erasure cannot be undone.")


@dg.op(description="Write everything held about one user to a JSON file (docs/gdpr.md) and audit the export.")
def gdpr_export(context: dg.OpExecutionContext, config: GdprExportConfig, postgres: PostgresResource,
                redis: RedisResource, elasticsearch: ElasticsearchResource):
    user_id = _valid_user_id(config.user_id)
    started = time.monotonic()
    try:
        document = export_core.export_user(postgres.engine, redis.client, elasticsearch.client,
                                           elasticsearch.layout(), user_id, config.requested_by)
    except gdpr.GdprError as exc:
        raise dg.Failure(description=str(exc)) from None
    text = export_core.to_json(document)
    write_atomically(Path(config.output), text)
    parts = ("memberships", "memberships_granted", "workflows", "workflow_versions", "executions", "audit_logs")
    metadata = {f"rows_{part}": len(document[part]) for part in parts}
    metadata |= {"sessions": len(document["sessions"] or []),
                 "search_documents": sum(len(v) for v in (document["search_documents"] or {}).values()),
                 "file": dg.MetadataValue.path(config.output), "size_bytes": len(text.encode()),
                 "audit_row_id": document["audit_row_id"], "duration_s": round(time.monotonic() - started, 3)}
    return dg.Output(None, metadata=metadata)


@dg.op(description="Erase one user: PostgreSQL in one transaction (recorded in the erasure ledger, and in the "
                   "ledger file outside the database before COMMIT), then Redis and search, each retried. Refused "
                   "in production without confirm: true.")
def gdpr_erase(context: dg.OpExecutionContext, config: GdprEraseConfig, postgres: PostgresResource,
               redis: RedisResource, elasticsearch: ElasticsearchResource, deployment: DeploymentResource,
               backup_storage: BackupStorageResource):
    user_id = _valid_user_id(config.user_id)
    if deployment.name() == "production" and not config.confirm:
        raise refused(f"refusing to erase user {user_id} in production: the erasure cannot be undone; "
                      f"{set_config('confirm')}")
    try:
        report = erase_core.erase_user(postgres.engine, redis.client, elasticsearch.client, elasticsearch.layout(),
                                       user_id, config.requested_by,
                                       ledger=ErasureLedger(backup_storage.gdpr_ledger()))
    except (gdpr.GdprError, LedgerError) as exc:
        raise dg.Failure(description=exc.one_line()) from None
    metadata = {f"postgres_{table}": n for table, n in report.postgres.items()}
    metadata |= {"request_id": report.request_id, "ledger_file": dg.MetadataValue.path(report.ledger_file)}
    metadata |= {f"redis_{key}": n for key, n in (report.redis or {}).items()}
    metadata |= {f"search_{name}_left": n for name, n in (report.search or {}).items()}
    metadata |= {"already_erased": report.already_erased, "duration_s": report.duration_s}
    if not report.ok:
        raise dg.Failure(description="erasure incomplete, run the job again to finish: "
                                     + "; ".join(f"{k}: {v}" for k, v in report.errors.items()), metadata=metadata)
    if report.already_erased:
        raise dg.Failure(description=f"user {user_id} was already erased: nothing changed in PostgreSQL "
                                     "(Redis and search were cleaned again)", metadata=metadata)
    return dg.Output(None, metadata=metadata)


@dg.job(metadata=runbook_metadata("gdpr_export_job"),
        description="Export everything held about one user to a JSON file (run config: user_id, requested_by, "
                    "output), as `orchestrator-data gdpr export` does.")
def gdpr_export_job():
    gdpr_export()


# the erasure syncs the indices that reference users (gdpr.erase.SEARCH_INDICES): one sync per index
@dg.job(tags=sync_tags(erase_core.SEARCH_INDICES), metadata=runbook_metadata("gdpr_erase_job"),
        description="Erase one user everywhere (run config: user_id, requested_by; confirm: true in production), "
                    "as `orchestrator-data gdpr erase --confirm` does.")
def gdpr_erase_job():
    gdpr_erase()
