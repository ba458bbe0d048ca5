"""The application schema as an asset: migrations to head, with what they did and what the tables hold.

Thin: `orchestrator_data.postgres.migrator` does the work (advisory lock, checksums, one
transaction per revision, ledger, security check) — the same code `orchestrator-data migrate up` runs.
"""

# no `from __future__ import annotations`: Dagster reads the context annotation at definition time
import dagster as dg

from assets import keys, records
from assets._metadata import code_version, with_human_sizes
from assets._runbook import runbook_metadata
from orchestrator_data.postgres import catalog, migrator, models, security
from orchestrator_data.redaction import redact
from orchestrator_data.runbook import described
from orchestrator_data.units import human_bytes
from resources import PostgresResource

REVISION_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("revision", "string"),
    dg.TableColumn("description", "string"),
    dg.TableColumn("duration_ms", "int"),
    dg.TableColumn("checksum", "string", description="sha256 of the revision file (first 12 hex digits)"),
])
TABLE_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("table", "string"),
    dg.TableColumn("rows", "int"),
    dg.TableColumn("rows_exact", "bool", description="false: pg_class.reltuples estimate (large table)"),
    dg.TableColumn("size", "string", description="total, in binary units"),
    dg.TableColumn("share_pct", "float", description="the table's share of the schema's total size, in percent"),
    dg.TableColumn("total_bytes", "int", description="pg_total_relation_size: heap, TOAST and indexes"),
    dg.TableColumn("table_bytes", "int"),
    dg.TableColumn("index_bytes", "int"),
    dg.TableColumn("index_pct", "float", description="indexes' share of the table's total size, in percent"),
    dg.TableColumn("columns", "string", description="the table's columns and types, from the models"),
])
SECURITY_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("table", "string"),
    dg.TableColumn("rls_enabled", "bool"),
    dg.TableColumn("rls_forced", "bool"),
    dg.TableColumn("policies", "string"),
    dg.TableColumn("audit_trigger", "string"),
    dg.TableColumn("problems", "string"),
])


def _columns(table: str) -> str:
    found = models.metadata.tables.get(table)
    return ", ".join(f"{c.name} {c.type}".lower() for c in found.columns) if found is not None else ""


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def schema_metadata(report: migrator.MigrationReport, stats: list[catalog.TableStats]) -> dict:
    """postgres_schema's metadata (also recorded by `migrate up`, `init`, `reset` and reset_job): what a DBA reads —
    the revisions, one table of the tables (largest first), and the totals the UI plots."""
    stats = sorted(stats, key=lambda s: s.total_bytes, reverse=True)
    total_bytes = sum(s.total_bytes for s in stats)
    return with_human_sizes({
        "head_revision": report.head,
        "current_revision": report.end_revision or "base",
        "previous_revision": report.start_revision or "base",
        "applied_count": len(report.applied),
        "applied_revisions": dg.MetadataValue.table(
            records=[dg.TableRecord({"revision": a.revision, "description": a.description,
                                     "duration_ms": a.duration_ms, "checksum": a.checksum[:12]})
                     for a in report.applied],
            schema=REVISION_COLUMNS,
        ),
        "migration_ms": sum(a.duration_ms for a in report.applied),
        "lock_wait_ms": report.lock_wait_ms,
        "tables": dg.MetadataValue.table(
            records=[dg.TableRecord({"table": s.table, "rows": s.rows, "rows_exact": s.rows_exact,
                                     "size": human_bytes(s.total_bytes), "share_pct": _pct(s.total_bytes, total_bytes),
                                     "total_bytes": s.total_bytes, "table_bytes": s.table_bytes,
                                     "index_bytes": s.index_bytes, "index_pct": _pct(s.index_bytes, s.total_bytes),
                                     "columns": _columns(s.table)}) for s in stats],
            schema=TABLE_COLUMNS,
        ),
        "total_bytes": total_bytes,
        "dagster/row_count": sum(s.rows for s in stats),
    })


@records.builds(keys.POSTGRES_SCHEMA)
def schema_record(report: migrator.MigrationReport, live: records.Live) -> dict:
    return schema_metadata(report, catalog.table_stats(live.postgres.engine))


@dg.asset(
    name=keys.POSTGRES_SCHEMA,
    group_name=keys.POSTGRES_GROUP,
    kinds={"postgres"},
    owners=["team:data-platform"],
    code_version=code_version(migrator, catalog, security),
    description="The application schema in PostgreSQL, migrated to the head revision under an advisory lock "
                "(concurrent runs wait, then find nothing to do). Refuses when an applied revision file was "
                "edited; each revision runs in its own transaction and is recorded in _migration_history; "
                "the security check (forced RLS, policies, audit triggers) runs after it. Metadata: the "
                "revisions applied with their durations, and rows and sizes per table.",
)
def postgres_schema(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    try:
        report = migrator.upgrade(postgres.engine)
    except migrator.MigrationError as exc:
        raise dg.Failure(description=redact(str(exc))) from None
    if report.applied:
        context.log.info("applied " + ", ".join(f"{a.revision} ({a.duration_ms} ms)" for a in report.applied))
    else:
        context.log.info(f"already at {report.end_revision}; nothing to apply")
    return dg.MaterializeResult(metadata=schema_record(report, records.Live(postgres=postgres)))


DRIFT_SECTION = keys.check_section(keys.POSTGRES_SCHEMA, keys.DRIFT)
SECURITY_SECTION = keys.check_section(keys.POSTGRES_SCHEMA, keys.SECURITY)


def _first(items: list[str], count: int) -> str:
    shown = "; ".join(redact(str(item)) for item in items[:count])
    return shown + (f" (and {len(items) - count} more)" if len(items) > count else "")


@dg.asset_check(asset=postgres_schema, name=keys.DRIFT, blocking=True, metadata=runbook_metadata(DRIFT_SECTION),
                description=described("The live schema matches the models (orchestrator_data/postgres/models.py), "
                                      "as `alembic check` compares them: tables, columns, types, defaults, indexes, "
                                      "keys.", DRIFT_SECTION))
def check_postgres_schema_drift(postgres: PostgresResource) -> dg.AssetCheckResult:
    differences = catalog.check_drift(postgres.engine)
    description = (f"{len(differences)} difference(s) from the models: {_first(differences, 2)}; repair: a new "
                   f"revision, or revert the manual change" if differences else "the live schema matches the models")
    return dg.AssetCheckResult(
        passed=not differences,
        description=description,
        metadata={"difference_count": len(differences),
                  "differences": dg.MetadataValue.md("\n".join(f"- {d}" for d in differences) or "none"),
                  **runbook_metadata(DRIFT_SECTION)},
    )


@dg.asset_check(asset=postgres_schema, name=keys.SECURITY, blocking=True,
                metadata=runbook_metadata(SECURITY_SECTION),
                description=described("Every tenant table has row-level security enabled AND forced with the "
                                      "expected policies and its audit trigger; audit_logs is append-only; the app "
                                      "role bypasses nothing and owns nothing.", SECURITY_SECTION))
def check_postgres_schema_security(postgres: PostgresResource) -> dg.AssetCheckResult:
    report = security.check_security(postgres.engine)
    description = (f"{len(report.problems)} security problem(s): {_first(report.problems, 2)}; repair: "
                   f"orchestrator-data migrate up, then find who changed it" if report.problems
                   else f"{len(report.tables)} tenant tables isolated and audited")
    return dg.AssetCheckResult(
        passed=report.ok,
        description=description,
        metadata={
            "problem_count": len(report.problems),
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in report.problems) or "none"),
            "tables": dg.MetadataValue.table(
                records=[dg.TableRecord({
                    "table": t.table, "rls_enabled": t.rls_enabled, "rls_forced": t.rls_forced,
                    "policies": ", ".join(t.policies),
                    "audit_trigger": {True: "yes", False: "MISSING", None: "n/a"}[t.audit_trigger],
                    "problems": "; ".join(t.problems),
                }) for t in report.tables],
                schema=SECURITY_COLUMNS,
            ),
            **runbook_metadata(SECURITY_SECTION),
        },
    )


POSTGRES_ASSETS = [postgres_schema]
POSTGRES_ASSET_CHECKS = [check_postgres_schema_drift, check_postgres_schema_security]
