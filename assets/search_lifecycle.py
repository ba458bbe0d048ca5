"""`search_lifecycle`: rollover and retention of the search indices by their policies, downstream of
the index assets. Thin: orchestrator_data.search.lifecycle does the work, the same code
`orchestrator-data search rollover|retention` runs."""

# no `from __future__ import annotations`: Dagster reads the context annotation at definition time
import time

import dagster as dg

from assets import keys, records
from assets._metadata import code_version
from orchestrator_data.search import index_retention, lifecycle, policies as lifecycle_policies, rollover
from orchestrator_data.search.errors import SearchError
from orchestrator_data.search.index_retention import RetentionReport
from orchestrator_data.search.indices import NAMES
from orchestrator_data.search.rollover import RolloverDecision
from orchestrator_data.units import show
from resources import ElasticsearchResource, PostgresResource

ROLLOVER_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("index", "string"),
    dg.TableColumn("condition", "string"),
    dg.TableColumn("value", "string", description="the write index's figure when measured"),
    dg.TableColumn("threshold", "string"),
    dg.TableColumn("met", "bool"),
    dg.TableColumn("outcome", "string"),
])
RETENTION_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("index", "string"),
    dg.TableColumn("backing_index", "string"),
    dg.TableColumn("rolled_over_at", "string"),
    dg.TableColumn("age", "string"),
    dg.TableColumn("delete_after", "string"),
    dg.TableColumn("action", "string"),
])


def _rollover_rows(decisions: list[RolloverDecision]) -> list[dg.TableRecord]:
    rows = []
    for d in decisions:
        outcome = d.action + (f" → {d.new_index}" if d.new_index else "")
        for c in d.checks or [None]:
            rows.append(dg.TableRecord({
                "index": d.index, "condition": c.condition if c else "-", "value": c.value if c else "-",
                "threshold": c.threshold if c else "-", "met": bool(c and c.met), "outcome": outcome}))
    return rows


def _retention_rows(reports: list[RetentionReport]) -> list[dg.TableRecord]:
    return [dg.TableRecord({
        "index": r.index, "backing_index": b.index,
        "rolled_over_at": b.rolled_over_at.isoformat(timespec="seconds") if b.rolled_over_at else "-",
        "age": show("time", b.age_s), "delete_after": r.delete_after or "never",
        "action": str(b.action)})  # a plain str: Dagster's serializer refuses an enum it does not know
        for r in reports for b in r.backing]


@dg.asset(
    name=keys.SEARCH_LIFECYCLE, group_name=keys.SEARCH_GROUP, kinds={"elasticsearch"}, owners=["team:data-platform"],
    deps=keys.index_keys(NAMES), code_version=code_version(lifecycle, lifecycle_policies, rollover, index_retention),
    description="Rollover and retention of every search index by its lifecycle policy (search/policies/, "
                "SEARCH_LIFECYCLE_DIR): a new backing index when a max_* condition is met and every min_* guard "
                "is; backing indices deleted once they rolled over longer ago than the policy keeps them, never "
                "the write index. Runs on any cluster, ILM or not. Metadata: each condition's value against its "
                "threshold, indices rolled over and deleted.",
)
def search_lifecycle(context: dg.AssetExecutionContext, postgres: PostgresResource,
                     elasticsearch: ElasticsearchResource) -> dg.MaterializeResult:
    started = time.monotonic()
    try:
        policies = lifecycle_policies.load_policies(elasticsearch.lifecycle_directory())
        done = lifecycle.apply(postgres.engine, elasticsearch.client, elasticsearch.layout(), policies)
    except SearchError as exc:
        raise dg.Failure(description=str(exc)) from None
    missing = [d.index for d in done.rollovers if d.action == "missing"]
    if missing:
        raise dg.Failure(description=f"index(es) missing: {', '.join(missing)}; materialize their "
                                     f"search_<index>_index assets (or `orchestrator-data search init`)")
    for step in [*done.rollovers, *done.retention]:
        if step.action == "busy":
            context.log.warning(f"{step.index}: {step.reason}")
    metadata = lifecycle_metadata(done, time.monotonic() - started)
    context.log.info(f"rolled over: {metadata['rollovers'].value}; deleted by retention: {metadata['deleted'].value}")
    return dg.MaterializeResult(metadata=metadata)


@records.builds(keys.SEARCH_LIFECYCLE)
def lifecycle_record(timed: tuple[lifecycle.LifecycleReport, float], live: records.Live) -> dict:
    """From outside the asset the report comes with its duration: (report, seconds)."""
    return lifecycle_metadata(*timed)


def lifecycle_metadata(done: lifecycle.LifecycleReport, duration_s: float) -> dict:
    """search_lifecycle's metadata (also recorded by `search rollover` and `search retention`, each with
    its own half)."""
    rolled = [f"{d.write_index} → {d.new_index}" for d in done.rollovers if d.action == "rolled over"]
    deleted = [index for r in done.retention for index in r.deleted]
    return {
        "rolled_over": len(rolled),
        "rollovers": dg.MetadataValue.md("\n".join(f"- {line}" for line in rolled) or "none"),
        "deleted_indices": len(deleted),
        "deleted": dg.MetadataValue.md("\n".join(f"- {index}" for index in deleted) or "none"),
        "busy": ", ".join(s.index for s in [*done.rollovers, *done.retention] if s.action == "busy") or "none",
        "rollover_conditions": dg.MetadataValue.table(_rollover_rows(done.rollovers), schema=ROLLOVER_COLUMNS),
        "backing_indices": dg.MetadataValue.table(_retention_rows(done.retention), schema=RETENTION_COLUMNS),
        "duration_s": dg.MetadataValue.float(round(duration_s, 3)),
    }
