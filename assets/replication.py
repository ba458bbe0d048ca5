"""`postgres_replication`, an observed asset: who the primary is, its timeline, each standby's lag and each
slot's retained WAL, read from the server DATABASE_URL reaches (status.py in the core); and its check
"lag within target". Nothing is built: each materialization records what was seen (as wal_archive does;
Dagster's observable source assets are still beta), its data version the primary and timeline."""

# no `from __future__ import annotations`: Dagster reads the parameter annotations to inject resources
import dagster as dg

from assets import keys
from assets._metadata import code_version, with_human_sizes
from assets._runbook import runbook_metadata
from orchestrator_data.replication import status as replication_status
from orchestrator_data.replication.lag import LagTarget, lag_problems
from orchestrator_data.replication.status import ReplicationStatus, observe_engine
from orchestrator_data.runbook import described
from resources import PostgresResource

STANDBYS = dg.TableSchema(columns=[
    dg.TableColumn("standby", "string", description="application_name (the standby's cluster_name)"),
    dg.TableColumn("state", "string"), dg.TableColumn("sync_state", "string"),
    dg.TableColumn("slot", "string"),
    dg.TableColumn("sent_behind_bytes", "int"), dg.TableColumn("write_behind_bytes", "int"),
    dg.TableColumn("flush_behind_bytes", "int"), dg.TableColumn("replay_behind_bytes", "int"),
    dg.TableColumn("write_lag_s", "float", description="-1: none measured (caught up and idle)"),
    dg.TableColumn("flush_lag_s", "float"), dg.TableColumn("replay_lag_s", "float"),
])
SLOTS = dg.TableSchema(columns=[
    dg.TableColumn("slot", "string"), dg.TableColumn("type", "string"), dg.TableColumn("active", "bool"),
    dg.TableColumn("wal_status", "string"), dg.TableColumn("retained_bytes", "int"),
])
LAG_SECTION = keys.check_section(keys.POSTGRES_REPLICATION, keys.LAG)


def _int(value) -> int:
    return -1 if value is None else int(value)


def _float(value) -> float:
    return -1.0 if value is None else float(value)


def _metadata(status: ReplicationStatus) -> dict:
    standbys = status.standbys
    metadata: dict = {
        "role": status.role,
        "primary": status.server if status.is_primary else (
            f"{status.upstream.sender_host}:{status.upstream.sender_port}" if status.upstream else "unknown"),
        "timeline": dg.MetadataValue.int(status.timeline if status.timeline is not None else -1),
        "wal_position": status.position or "",
        "standbys": dg.MetadataValue.int(len(standbys)),
        "standby_table": dg.MetadataValue.table(records=[dg.TableRecord({
            "standby": s.application_name, "state": s.state or "", "sync_state": s.sync_state or "",
            "slot": s.slot_name or "", "sent_behind_bytes": _int(s.sent_behind_bytes),
            "write_behind_bytes": _int(s.write_behind_bytes), "flush_behind_bytes": _int(s.flush_behind_bytes),
            "replay_behind_bytes": _int(s.replay_behind_bytes), "write_lag_s": _float(s.write_lag_s),
            "flush_lag_s": _float(s.flush_lag_s), "replay_lag_s": _float(s.replay_lag_s),
        }) for s in standbys], schema=STANDBYS),
        "slot_table": dg.MetadataValue.table(records=[dg.TableRecord({
            "slot": s.slot_name, "type": s.slot_type, "active": s.active, "wal_status": s.wal_status or "",
            "retained_bytes": _int(s.retained_bytes)}) for s in status.slots], schema=SLOTS),
        "summary": dg.MetadataValue.md("\n".join(f"    {line}" for line in replication_status.summary_lines(status))),
    }
    # the figures the UI plots: the standby furthest behind, the slot holding the most WAL
    if standbys:
        metadata["max_replay_lag_bytes"] = dg.MetadataValue.int(max(_int(s.replay_behind_bytes) for s in standbys))
        metadata["max_replay_lag_s"] = dg.MetadataValue.float(max(s.replay_lag_s or 0.0 for s in standbys))
    if status.slots:
        metadata["max_slot_retained_bytes"] = dg.MetadataValue.int(max(_int(s.retained_bytes) for s in status.slots))
    return with_human_sizes(metadata)


@dg.asset(
    name=keys.POSTGRES_REPLICATION,
    group_name=keys.OPERATIONS_GROUP,
    kinds={"postgres"},
    owners=["team:data-platform"],
    code_version=code_version(replication_status),
    description="Replication as the primary sees it: who the primary is (host:port), its timeline, each "
                "standby's state and lag (bytes behind sent/written/flushed/replayed, write/flush/replay "
                "seconds) and each replication slot's retained WAL. Observed by replication_job; its data "
                "version changes when the primary or the timeline does (a failover).",
)
def postgres_replication(postgres: PostgresResource) -> dg.MaterializeResult:
    status = observe_engine(postgres.engine)
    return dg.MaterializeResult(metadata=_metadata(status),
                                data_version=dg.DataVersion(f"{status.role}:{status.server}:timeline-{status.timeline}"))


@dg.asset_check(asset=postgres_replication, name=keys.LAG, metadata=runbook_metadata(LAG_SECTION),
                description=described("Every standby streams and is within REPLICATION_LAG_TARGET_SECONDS and "
                                      "REPLICATION_LAG_TARGET_BYTES of its primary (passes with no standby: "
                                      "replication_sensor says when one disappears).", LAG_SECTION))
def check_replication_lag(postgres: PostgresResource) -> dg.AssetCheckResult:
    target = LagTarget.from_settings(postgres.settings)
    status = observe_engine(postgres.engine)
    found = lag_problems(status, target)
    standbys = status.standbys
    if found:
        description = "; ".join(found.values()) + "; repair: docs/runbook.md, " + LAG_SECTION
    elif standbys:
        description = f"{len(standbys)} standby(s) within {target.describe()}"
    else:
        description = f"no standby streams from {status.server or 'this server'} ({status.role})"
    return dg.AssetCheckResult(
        passed=not found,
        description=description,
        metadata={"target_seconds": dg.MetadataValue.float(target.seconds),
                  "target_bytes": dg.MetadataValue.int(target.bytes),
                  "standbys": dg.MetadataValue.int(len(standbys)),
                  "behind": dg.MetadataValue.int(len(found))} | runbook_metadata(LAG_SECTION),
    )


REPLICATION_ASSETS = [postgres_replication]
REPLICATION_ASSET_CHECKS = [check_replication_lag]
