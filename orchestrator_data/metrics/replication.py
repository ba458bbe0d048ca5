"""Replication's figures for system_metrics: each standby's lag (bytes and seconds), each slot's retained
WAL, the server's timeline and role. Nothing is sampled for a primary without standbys or slots but its
timeline and the count of standbys (0), so an alert on "standbys < 1" has a series to read."""

from __future__ import annotations

from orchestrator_data.metrics.samples import BYTES, COUNT, Sample
from orchestrator_data.replication.status import ReplicationStatus

SERVICE = "postgres"
SECONDS = "seconds"


def samples(status: ReplicationStatus) -> list[Sample]:
    role = {"role": status.role}
    found = [Sample(SERVICE, "replication_standbys", len(status.standbys), COUNT, role)]
    if status.timeline is not None:
        found.append(Sample(SERVICE, "replication_timeline", status.timeline, COUNT, role))
    for standby in status.standbys:
        labels = {"standby": standby.application_name, "sync_state": standby.sync_state or "unknown"}
        for stage in ("sent", "write", "flush", "replay"):
            behind = getattr(standby, f"{stage}_behind_bytes")
            if behind is not None:
                found.append(Sample(SERVICE, f"replication_{stage}_lag_bytes", behind, BYTES, labels))
        for stage in ("write", "flush", "replay"):
            # PostgreSQL reports no lag time once a standby has caught up and nothing new was written
            seconds = getattr(standby, f"{stage}_lag_s")
            found.append(Sample(SERVICE, f"replication_{stage}_lag_seconds", seconds or 0.0, SECONDS, labels))
    for slot in status.slots:
        if slot.retained_bytes is not None:
            found.append(Sample(SERVICE, "replication_slot_retained_bytes", slot.retained_bytes, BYTES,
                                {"slot": slot.slot_name, "active": str(slot.active).lower()}))
    return found


def worst(status: ReplicationStatus | None) -> dict[str, float]:
    """The headline figures: the standby furthest behind, the slot holding the most WAL."""
    if status is None:
        return {}
    figures: dict[str, float] = {"pg_standbys": len(status.standbys)}
    if status.timeline is not None:
        figures["pg_timeline"] = status.timeline
    replay_bytes = [s.replay_behind_bytes for s in status.standbys if s.replay_behind_bytes is not None]
    if replay_bytes:
        figures["pg_replication_replay_lag_bytes"] = max(replay_bytes)
    if status.standbys:
        figures["pg_replication_replay_lag_seconds"] = max(s.replay_lag_s or 0.0 for s in status.standbys)
    retained = [s.retained_bytes for s in status.slots if s.retained_bytes is not None]
    if retained:
        figures["pg_slot_retained_bytes"] = max(retained)
    return figures
