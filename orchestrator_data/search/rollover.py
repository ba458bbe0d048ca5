"""Rollover of a search index's write alias, on its policy's conditions, run by orchestrator-data
itself so it works the same on every cluster (the local node and many real ones have no ILM).

An index rolls over when any max_* condition is met and every min_* guard is (Elasticsearch's own
rule; it decides atomically in the rollover request, asked with the policy's conditions). The step
holds the index's lock, so the write alias never moves under a sync that is writing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.search.errors import NOTHING_CHANGED, SyncBusy, elasticsearch_errors
from orchestrator_data.search.indices import Layout, creation_dates, write_index
from orchestrator_data.search.locks import lifecycle_lock
from orchestrator_data.search.policies import CONDITIONS, Policy
from orchestrator_data.units import show


class RolloverAction(StrEnum):
    ROLLED_OVER = "rolled over"
    WOULD_ROLL_OVER = "would roll over"
    STAYS = "stays"
    BUSY = "busy"
    MISSING = "missing"
    NO_POLICY = "no policy"


@dataclass
class ConditionCheck:
    condition: str
    threshold: str          # as the policy writes it
    value: str              # the write index's current figure, as a person reads it
    met: bool
    measured: float = 0.0   # the same figure, raw (seconds, bytes, documents)
    limit: float = 0.0


@dataclass
class RolloverDecision:
    index: str
    write_index: str | None
    checks: list[ConditionCheck] = field(default_factory=list)
    action: RolloverAction = RolloverAction.STAYS
    new_index: str | None = None
    reason: str = ""

    @property
    def rolls(self) -> bool:
        return self.action in (RolloverAction.ROLLED_OVER, RolloverAction.WOULD_ROLL_OVER)


def measure(client: Elasticsearch, index: str, now: datetime) -> dict[str, float]:
    """What each condition measures, for one backing index, as the rollover API sees it."""
    stats = client.indices.stats(index=index, metric="docs,store", level="shards")["indices"][index]
    primaries = [copy for copies in stats["shards"].values() for copy in copies if copy["routing"]["primary"]]
    created = creation_dates(client, [index])[index]
    return {
        "age": (now - created).total_seconds(),
        "docs": stats["primaries"]["docs"]["count"],
        "size": stats["primaries"]["store"]["size_in_bytes"],
        "primary_shard_size": max((p["store"]["size_in_bytes"] for p in primaries), default=0),
        "primary_shard_docs": max((p["docs"]["count"] for p in primaries), default=0),
    }


def _verdict(checks: list[ConditionCheck]) -> tuple[bool, str]:
    met_max = [c for c in checks if c.condition.startswith("max_") and c.met]
    unmet_min = [c for c in checks if c.condition.startswith("min_") and not c.met]
    if not met_max:
        return False, "no max_* condition met"
    if unmet_min:
        return False, "; ".join(f"guard {c.condition}: {c.value} < {c.threshold}" for c in unmet_min)
    return True, "; ".join(f"{c.condition}: {c.value} ≥ {c.threshold}" for c in met_max)


def _checks(policy: Policy, measured: dict[str, float], answered: dict[str, bool]) -> list[ConditionCheck]:
    checks = []
    for name, limit in policy.thresholds().items():
        what, kind = CONDITIONS[name]
        value = measured[what]
        # Elasticsearch's answer when it gave one (it decides the rollover); ours from the same figures else
        met = answered.get(name, value >= limit)
        checks.append(ConditionCheck(name, str(policy.rollover[name]), show(kind, value), met, value, limit))
    return checks


def _answered(response: dict) -> dict[str, bool]:
    """{'[max_docs: 10]': True, ...} -> {'max_docs': True, ...}"""
    found = {}
    for key, met in (response.get("conditions") or {}).items():
        match = re.fullmatch(r"\[(\w+): .*\]", key)
        if match:
            found[match.group(1)] = bool(met)
    return found


def rollover_index(engine: sa.Engine, client: Elasticsearch, layout: Layout, policy: Policy, *,
                   dry_run: bool = False, now: datetime | None = None) -> RolloverDecision:
    """Measure the write index against the policy and, unless dry_run, roll it over when Elasticsearch
    agrees the conditions hold (asked with the same conditions, it decides atomically)."""
    name = policy.index
    if not policy.rollover:
        return RolloverDecision(name, write_index(client, layout, name), action=RolloverAction.NO_POLICY,
                                reason="the policy has no rollover conditions")
    try:
        with elasticsearch_errors(f"rollover of {layout.read_alias(name)}", consequence=NOTHING_CHANGED), \
                lifecycle_lock(engine, layout.read_alias(name), dry_run):
            current = write_index(client, layout, name)
            if current is None:
                return RolloverDecision(name, None, action=RolloverAction.MISSING,
                                        reason=f"{layout.read_alias(name)} does not exist: run `search init`")
            measured = measure(client, current, now or datetime.now(UTC))
            response = client.indices.rollover(alias=layout.write_alias(name), conditions=policy.rollover,
                                               dry_run=True if dry_run else None,
                                               aliases=None if dry_run else {layout.read_alias(name): {}})
    except SyncBusy as exc:
        return RolloverDecision(name, None, action=RolloverAction.BUSY, reason=f"{exc}; the next run tries again")
    checks = _checks(policy, measured, _answered(response))
    rolls, reason = _verdict(checks)
    if dry_run:
        action = RolloverAction.WOULD_ROLL_OVER if rolls else RolloverAction.STAYS
    else:
        action = RolloverAction.ROLLED_OVER if response.get("rolled_over") else RolloverAction.STAYS
    return RolloverDecision(name, current, checks, action,
                            response.get("new_index") if rolls or response.get("rolled_over") else None, reason)
