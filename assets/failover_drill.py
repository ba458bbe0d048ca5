"""The failover drill as an asset: `dr_drill_job` starts a scratch HA pair (etcd and two Patroni members of
its own, never the configured database), kills its primary (-9) under writers and records what a user
lives through — writes-resumed time, acknowledged commits lost, the old primary's rejoin time, moments
with two writable primaries — as numbers the asset page plots run after run.

Thin: stack/ha_scratch.py and replication/drill.py do the work (bench/failover.py runs the same drill)."""

# no `from __future__ import annotations`: Dagster reads the context annotation at definition time
import dagster as dg

from assets import keys, records
from assets._metadata import code_version
from orchestrator_data.errors import DataLayerError
from orchestrator_data.redaction import redact
from orchestrator_data.replication import drill as drill_module
from orchestrator_data.stack.ha_scratch import drill_on_scratch_pair


@records.builds(keys.FAILOVER_DRILL)
def failover_drill_metadata(result: "drill_module.DrillResult", live: records.Live | None = None, *,
                            mode: str = "sync") -> dict:
    """failover_drill's metadata: the drill's figures as numbers the asset page plots."""
    return {
        "kind": result.kind,
        "replication_mode": mode,
        "writes_resumed_s": dg.MetadataValue.float(result.writes_resumed_s),
        "commits_lost": dg.MetadataValue.int(result.commits_lost),
        "rejoin_s": dg.MetadataValue.float(result.rejoin_s if result.rejoin_s is not None else float("nan")),
        "two_primaries_rounds": dg.MetadataValue.int(result.two_primaries_rounds),
        "commits_acknowledged": dg.MetadataValue.int(result.commits_acknowledged),
        "commits_per_s": dg.MetadataValue.float(result.commits_per_s),
        "old_primary": result.old_primary,
        "new_primary": result.new_primary,
    }


class FailoverDrillConfig(dg.Config):
    kind: str = "postgres"  # postgres: the primary's server killed; member: Patroni and the server together
    mode: str = "sync"  # the scratch pair's REPLICATION_MODE: sync, strict or async
    rate: float = 200.0  # the writers' commits per second


@dg.asset(
    name=keys.FAILOVER_DRILL,
    group_name=keys.OPERATIONS_GROUP,
    kinds={"postgres"},
    owners=["team:data-platform"],
    code_version=code_version(drill_module),
    description="A failover drill on a scratch Patroni pair (never the configured database): the primary killed -9 "
                "under writers; records writes-resumed seconds, commits lost, rejoin seconds and rounds with two "
                "writable primaries. Fails when a commit was lost in sync mode or two primaries were seen.",
)
def failover_drill(context: dg.AssetExecutionContext, config: FailoverDrillConfig) -> dg.MaterializeResult:
    if config.kind not in drill_module.KINDS or config.mode not in ("sync", "strict", "async"):
        raise dg.Failure(description=f"kind must be one of {', '.join(drill_module.KINDS)} and mode one of "
                                     "sync, strict, async")
    try:
        result = drill_on_scratch_pair(kind=config.kind, mode=config.mode, rate=config.rate)
    except DataLayerError as exc:
        raise dg.Failure(description=redact(exc.one_line())) from None
    metadata = failover_drill_metadata(result, mode=config.mode)
    problems = []
    if result.commits_lost and config.mode != "async":
        problems.append(f"{result.commits_lost} acknowledged commits lost with a synchronous standby")
    if result.two_primaries_rounds:
        problems.append(f"two writable primaries in {result.two_primaries_rounds} watcher rounds")
    if result.rejoin_s is None:
        problems.append("the old primary did not rejoin as a standby in time")
    if problems:
        raise dg.Failure(description="failover drill: " + "; ".join(problems), metadata=metadata)
    context.log.info(f"failover drill: writes resumed after {result.writes_resumed_s} s, {result.commits_lost} "
                     f"commits lost, old primary back as a standby after {result.rejoin_s} s")
    return dg.MaterializeResult(metadata=metadata)


FAILOVER_DRILL_ASSETS = [failover_drill]
