"""Is replication healthy? The standbys against the lag target, and against the standbys seen before.

Pure judgement on a ReplicationStatus (status.py), shared by the asset's check and the sensor: each
problem has a stable key (what the sensor's cursor remembers, so it alerts once per problem) and one line
a DBA reads. A standby is behind when its replay is further than the target in bytes or in seconds
(PostgreSQL's replay_lag: the time recent WAL took to be replayed there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator_data.replication.status import ReplicationStatus, Sender
from orchestrator_data.units import human_bytes


@dataclass(frozen=True)
class LagTarget:
    seconds: float
    bytes: int

    @classmethod
    def from_settings(cls, settings) -> LagTarget:
        return cls(settings.replication_lag_target_seconds, settings.replication_lag_target_bytes)

    def describe(self) -> str:
        return f"{self.seconds:g} s / {human_bytes(self.bytes)}"


def behind(standby: Sender, target: LagTarget) -> str | None:
    """Why a standby is outside the target, in one line; None when it is within."""
    reasons = []
    if standby.state != "streaming":
        reasons.append(f"is {standby.state or 'in an unknown state'}, not streaming")
    if standby.replay_behind_bytes is not None and standby.replay_behind_bytes > target.bytes:
        reasons.append(f"has {human_bytes(standby.replay_behind_bytes)} of WAL not replayed "
                       f"(target {human_bytes(target.bytes)})")
    if standby.replay_lag_s is not None and standby.replay_lag_s > target.seconds:
        reasons.append(f"replays {standby.replay_lag_s:.1f} s behind (target {target.seconds:g} s)")
    return f"standby {standby.application_name} " + " and ".join(reasons) if reasons else None


def lag_problems(status: ReplicationStatus, target: LagTarget) -> dict[str, str]:
    """Every standby outside the target, by key `behind:<name>`."""
    found = {}
    for standby in status.standbys:
        why = behind(standby, target)
        if why:
            found[f"behind:{standby.application_name}"] = why
    return found


def problems(status: ReplicationStatus, target: LagTarget, known_standbys: Iterable[str] = (),
             known_timeline: int | None = None) -> dict[str, str]:
    """What to alert for: standbys behind, standbys seen before and gone (`gone:<name>`), a slot that lost
    WAL (`slot:<name>`), and a timeline other than the one seen before (`timeline:<n>`: the primary changed)."""
    found = lag_problems(status, target)
    streaming = {s.application_name for s in status.standbys}
    for name in sorted(set(known_standbys) - streaming):
        found[f"gone:{name}"] = f"standby {name} is no longer streaming from {status.server or 'the primary'}"
    for slot in status.slots:
        if slot.wal_status == "lost":
            found[f"slot:{slot.slot_name}"] = (f"replication slot {slot.slot_name} lost WAL its standby still needed: "
                                               f"rebuild that standby")
    if known_timeline is not None and status.timeline is not None and status.timeline != known_timeline:
        found[f"timeline:{status.timeline}"] = (
            f"the primary changed: timeline {known_timeline} -> {status.timeline}, now "
            f"{status.server or 'the server DATABASE_URL reaches'} (a failover or a switchover)")
    return found
