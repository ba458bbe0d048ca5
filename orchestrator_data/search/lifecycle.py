"""The search indices' lifecycle, run by orchestrator-data itself so it works the same on every
cluster (the local node and many real ones have no ILM): rollover and retention, from policies kept
as data files.

Policies: `search/policies/<index>.json` in the package, one per index; a file of the same name in
SEARCH_LIFECYCLE_DIR replaces the package's for that index. A policy has

    "rollover":  {condition: threshold, ...}   max_age, max_docs, max_size, max_primary_shard_size,
                                               max_primary_shard_docs, and the min_* guards of each
    "retention": {"delete_after": "30d"} | null

An index rolls over when any max_* condition is met and every min_* guard is (Elasticsearch's own
rule; it decides atomically in the rollover request). `min_docs` is 1 unless the policy says
otherwise, so an empty index never rolls. Retention deletes the backing indices that rolled over at
least `delete_after` ago — never the write index. Retention is refused for the indices synced from
PostgreSQL: their documents mirror rows, so deleting a backing index would drop live rows from
search (purge the rows in PostgreSQL and the sync deletes their documents).

Both steps hold the index's lock (the one the sync, reindex and snapshots take), so an alias never
moves and a backing index never disappears under a sync that is writing: each document keeps exactly
one copy, in the backing index that holds it, and the read alias always covers every backing index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.errors import BadInput
from orchestrator_data.policy_files import policy_data, policy_texts
from orchestrator_data.search.errors import SearchError, SyncBusy, elasticsearch_errors
from orchestrator_data.search.indices import NAMES, Layout, write_index
from orchestrator_data.search.locks import index_lock
from orchestrator_data.search.sources import SYNCED

LOCK_WAIT_S = 120.0  # a sync takes seconds; a reindex can take longer, and then the step waits for the next run

_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_UNITS_B = {"b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3, "tb": 1024 ** 4, "pb": 1024 ** 5}
# condition -> (what it measures, how its threshold is written)
CONDITIONS: dict[str, tuple[str, str]] = {}
for _bound in ("max", "min"):
    CONDITIONS |= {f"{_bound}_age": ("age", "time"), f"{_bound}_docs": ("docs", "count"),
                   f"{_bound}_size": ("size", "bytes"), f"{_bound}_primary_shard_size": ("primary_shard_size", "bytes"),
                   f"{_bound}_primary_shard_docs": ("primary_shard_docs", "count")}
POLICY_KEYS = {"index", "rollover", "retention"}
RETENTION_KEYS = {"delete_after"}


class InvalidPolicy(SearchError, BadInput):
    """A lifecycle policy file that is malformed; the message names the file and the field."""


# -- thresholds ------------------------------------------------------------------------------------
def parse_time(text: str) -> float:
    """'30d' -> seconds. The units Elasticsearch's time values use: d, h, m, s, ms."""
    match = re.fullmatch(r"(\d+)(d|h|m|s|ms)", text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError("a time like 30d, 12h, 90m, 45s (whole number, unit d, h, m, s or ms)")
    return int(match.group(1)) * _UNITS_S[match.group(2)]


def parse_bytes(text: str) -> int:
    """'30gb' -> bytes (binary multiples, as Elasticsearch reads them)."""
    match = re.fullmatch(r"(\d+)(b|kb|mb|gb|tb|pb)", text.strip().lower()) if isinstance(text, str) else None
    if not match:
        raise ValueError("a size like 50gb, 500mb, 1024kb (whole number, unit b, kb, mb, gb, tb or pb)")
    return int(match.group(1)) * _UNITS_B[match.group(2)]


def _threshold(kind: str, value) -> float:
    if kind == "time":
        return parse_time(value)
    if kind == "bytes":
        return parse_bytes(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("a whole number >= 0")
    return value


def show(kind: str, value: float | None) -> str:
    """A measured or threshold value as a person reads it."""
    if value is None:
        return "-"
    if kind == "time":
        for unit in ("d", "h", "m"):
            if value >= _UNITS_S[unit]:
                return f"{value / _UNITS_S[unit]:.1f}{unit}"
        return f"{value:.0f}s"
    if kind == "bytes":
        for unit in ("tb", "gb", "mb", "kb"):
            if value >= _UNITS_B[unit]:
                return f"{value / _UNITS_B[unit]:.1f}{unit}"
        return f"{value:.0f}b"
    return f"{value:,.0f}"


# -- policies --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    index: str
    source: str                          # the file it came from, for messages
    rollover: dict[str, str | int]       # condition -> threshold as written (min_docs defaulted to 1)
    delete_after: str | None = None      # retention; None keeps every backing index

    def thresholds(self) -> dict[str, float]:
        return {name: _threshold(CONDITIONS[name][1], value) for name, value in self.rollover.items()}

    @property
    def delete_after_s(self) -> float | None:
        return parse_time(self.delete_after) if self.delete_after else None


def parse_policy(text: str, where: str, expected_index: str) -> Policy:
    """A policy from a file's text; InvalidPolicy names `where` and the field for anything wrong."""
    data = policy_data(text, where, InvalidPolicy, known=POLICY_KEYS, subject="index", names=NAMES,
                       expected=expected_index)
    index = data["index"]
    rollover = data.get("rollover") or {}
    if not isinstance(rollover, dict):
        raise InvalidPolicy(f"{where}: 'rollover' must be an object of conditions")
    for name, value in rollover.items():
        if name not in CONDITIONS:
            raise InvalidPolicy(f"{where}: unknown rollover condition 'rollover.{name}' "
                                f"(known: {', '.join(CONDITIONS)})")
        try:
            _threshold(CONDITIONS[name][1], value)
        except ValueError as exc:
            raise InvalidPolicy(f"{where}: 'rollover.{name}' must be {exc} (got {value!r})") from None
    if rollover and not any(name.startswith("max_") for name in rollover):
        raise InvalidPolicy(f"{where}: 'rollover' needs at least one max_* condition (min_* only guard them)")
    if rollover:
        rollover = {**rollover, "min_docs": rollover.get("min_docs", 1)}  # an empty index never rolls
    retention = data.get("retention")
    delete_after = None
    if retention is not None:
        if not isinstance(retention, dict):
            raise InvalidPolicy(f"{where}: 'retention' must be an object ({{\"delete_after\": \"30d\"}}) or null")
        for key in retention:
            if key not in RETENTION_KEYS:
                raise InvalidPolicy(f"{where}: unknown field 'retention.{key}' (known: delete_after)")
        delete_after = retention.get("delete_after")
        try:
            parse_time(delete_after)
        except ValueError as exc:
            raise InvalidPolicy(f"{where}: 'retention.delete_after' must be {exc} (got {delete_after!r})") from None
        if index in SYNCED:
            raise InvalidPolicy(
                f"{where}: 'retention' is not allowed for '{index}': its documents mirror PostgreSQL rows, and "
                f"deleting a backing index would drop live rows from search; purge the rows in PostgreSQL and "
                f"the sync deletes their documents")
    return Policy(index, where, rollover, delete_after)


def load_policies(directory: Path | None = None) -> dict[str, Policy]:
    """Every index's policy: the package's, each replaced by a file of the same name in `directory`
    (SEARCH_LIFECYCLE_DIR). A file there that names no index is refused, not ignored."""
    texts = policy_texts("orchestrator_data.search", NAMES, directory, variable="SEARCH_LIFECYCLE_DIR",
                         kind="index", error=InvalidPolicy)
    return {name: parse_policy(text, where, name) for name, (text, where) in texts.items()}


def policies_of(settings) -> dict[str, Policy]:
    return load_policies(settings.search_lifecycle_dir)


# -- measuring the write index ---------------------------------------------------------------------
def _creation_dates(client: Elasticsearch, indices: list[str]) -> dict[str, datetime]:
    found = client.indices.get_settings(index=",".join(indices), name="index.creation_date")
    return {index: datetime.fromtimestamp(int(body["settings"]["index"]["creation_date"]) / 1000, UTC)
            for index, body in found.items()}


def measure(client: Elasticsearch, index: str, now: datetime) -> dict[str, float]:
    """What each condition measures, for one backing index, as the rollover API sees it."""
    stats = client.indices.stats(index=index, metric="docs,store", level="shards")["indices"][index]
    primaries = [copy for copies in stats["shards"].values() for copy in copies if copy["routing"]["primary"]]
    created = _creation_dates(client, [index])[index]
    return {
        "age": (now - created).total_seconds(),
        "docs": stats["primaries"]["docs"]["count"],
        "size": stats["primaries"]["store"]["size_in_bytes"],
        "primary_shard_size": max((p["store"]["size_in_bytes"] for p in primaries), default=0),
        "primary_shard_docs": max((p["docs"]["count"] for p in primaries), default=0),
    }


def _lock(engine: sa.Engine, layout: Layout, name: str, dry_run: bool):
    """The index's lock for a step that changes it; a dry run only reads, and takes none."""
    return nullcontext() if dry_run else index_lock(engine, layout.read_alias(name), wait_s=LOCK_WAIT_S)


def _errors(what: str):
    return elasticsearch_errors(what, consequence="nothing was changed by the failed request")


# -- rollover --------------------------------------------------------------------------------------
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
    action: str = "stays"   # rolled over | would roll over | stays | busy | missing | no policy
    new_index: str | None = None
    reason: str = ""

    @property
    def rolls(self) -> bool:
        return self.action in ("rolled over", "would roll over")


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
        return RolloverDecision(name, write_index(client, layout, name), action="no policy",
                                reason="the policy has no rollover conditions")
    try:
        with _errors(f"rollover of {layout.read_alias(name)}"), _lock(engine, layout, name, dry_run):
            current = write_index(client, layout, name)
            if current is None:
                return RolloverDecision(name, None, action="missing",
                                        reason=f"{layout.read_alias(name)} does not exist: run `search init`")
            measured = measure(client, current, now or datetime.now(UTC))
            response = client.indices.rollover(alias=layout.write_alias(name), conditions=policy.rollover,
                                               dry_run=True if dry_run else None,
                                               aliases=None if dry_run else {layout.read_alias(name): {}})
    except SyncBusy as exc:
        return RolloverDecision(name, None, action="busy", reason=f"{exc}; the next run tries again")
    checks = _checks(policy, measured, _answered(response))
    rolls, reason = _verdict(checks)
    if dry_run:
        action = "would roll over" if rolls else "stays"
    else:
        action = "rolled over" if response.get("rolled_over") else "stays"
    return RolloverDecision(name, current, checks, action,
                            response.get("new_index") if rolls or response.get("rolled_over") else None, reason)


# -- retention -------------------------------------------------------------------------------------
@dataclass
class BackingAge:
    index: str
    write_index: bool
    rolled_over_at: datetime | None     # when it stopped being the write index
    age_s: float | None                 # since then
    action: str                         # write index | keep | delete | deleted | no retention


@dataclass
class RetentionReport:
    index: str
    delete_after: str | None
    backing: list[BackingAge] = field(default_factory=list)
    action: str = "done"                # done | busy | missing | no retention
    reason: str = ""

    @property
    def deleted(self) -> list[str]:
        return [b.index for b in self.backing if b.action == "deleted"]

    @property
    def to_delete(self) -> list[str]:
        return [b.index for b in self.backing if b.action in ("delete", "deleted")]


def rolled_over_at(client: Elasticsearch, layout: Layout, name: str, indices: list[str]) -> dict[str, datetime | None]:
    """When each backing index stopped being the write index: the rollover's own record (rollover_info,
    kept in the index's metadata by every rollover), else the creation of the index created next."""
    state = client.cluster.state(metric="metadata", index=",".join(indices),
                                 filter_path="metadata.indices.*.rollover_info")
    infos = (state.get("metadata") or {}).get("indices") or {}
    created = sorted(_creation_dates(client, indices).items(), key=lambda item: item[1])
    found: dict[str, datetime | None] = {}
    for position, (index, _) in enumerate(created):
        info = (infos.get(index) or {}).get("rollover_info", {}).get(layout.write_alias(name))
        if info and "time" in info:
            found[index] = datetime.fromtimestamp(int(info["time"]) / 1000, UTC)
        elif position + 1 < len(created):
            found[index] = created[position + 1][1]
        else:
            found[index] = None
    return found


def retention_index(engine: sa.Engine, client: Elasticsearch, layout: Layout, policy: Policy, *,
                    dry_run: bool = False, now: datetime | None = None) -> RetentionReport:
    """Delete the backing indices that rolled over at least `delete_after` ago; never the write index."""
    name = policy.index
    report = RetentionReport(name, policy.delete_after)
    now = now or datetime.now(UTC)
    try:
        with _errors(f"retention of {layout.read_alias(name)}"), _lock(engine, layout, name, dry_run):
            current = write_index(client, layout, name)
            if current is None:
                report.action, report.reason = "missing", f"{layout.read_alias(name)} does not exist"
                return report
            backing = sorted(client.indices.get_alias(name=layout.read_alias(name)))
            ages = rolled_over_at(client, layout, name, backing)
            limit = policy.delete_after_s
            for index in backing:
                when = ages.get(index)
                age = (now - when).total_seconds() if when else None
                if index == current:
                    action = "write index"
                elif limit is None:
                    action = "no retention"
                elif age is not None and age >= limit:
                    action = "delete"
                else:
                    action = "keep"
                report.backing.append(BackingAge(index, index == current, None if index == current else when,
                                                 None if index == current else age, action))
            doomed = [b for b in report.backing if b.action == "delete"]
            if doomed and not dry_run:
                # the write index can never be among them; checked again against the live alias
                if write_index(client, layout, name) in {b.index for b in doomed}:
                    raise SearchError(f"retention of {layout.read_alias(name)}: refusing to delete the write index")
                client.indices.delete(index=",".join(b.index for b in doomed))
                for b in doomed:
                    b.action = "deleted"
    except SyncBusy as exc:
        report.action, report.reason = "busy", f"{exc}; the next run tries again"
        return report
    if limit is None:
        report.action, report.reason = "no retention", "the policy keeps every backing index"
    return report


# -- both, for the asset and the CLI -----------------------------------------------------------------
@dataclass
class LifecycleReport:
    rollovers: list[RolloverDecision]
    retention: list[RetentionReport]


def apply(engine: sa.Engine, client: Elasticsearch, layout: Layout, policies: dict[str, Policy],
          names: Iterable[str] = NAMES, *, dry_run: bool = False, now: datetime | None = None) -> LifecycleReport:
    """Rollover, then retention, for each index (an index that just rolled over is not yet old enough
    to be deleted, so the order only matters for what a report shows)."""
    names = list(names)
    rollovers = [rollover_index(engine, client, layout, policies[n], dry_run=dry_run, now=now) for n in names]
    retention = [retention_index(engine, client, layout, policies[n], dry_run=dry_run, now=now) for n in names]
    return LifecycleReport(rollovers, retention)


# -- native ILM ------------------------------------------------------------------------------------
def ilm_status(client: Elasticsearch) -> str | None:
    """'RUNNING' / 'STOPPING' / 'STOPPED' where the cluster has ILM; None where it has none (the local
    node answers 400 'no handler found': no x-pack). Asked without raising, so its absence is an answer."""
    response = client.options(ignore_status=(400, 401, 403, 404, 405, 410)).perform_request(
        "GET", "/_ilm/status", headers={"accept": "application/json"})
    status = response.meta.status
    if status == 200 and isinstance(response.body, dict):
        return str(response.body.get("operation_mode", "RUNNING"))
    if status in (401, 403):
        return "UNKNOWN (no privilege to read _ilm/status)"
    return None


def ilm_policy(policy: Policy, layout: Layout) -> dict:
    """The same policy in ILM's terms, for a cluster that has ILM. ILM counts the delete phase's
    min_age from the rollover too, so the meaning is the same."""
    phases: dict = {"hot": {"min_age": "0ms", "actions": {}}}
    if policy.rollover:
        phases["hot"]["actions"]["rollover"] = dict(policy.rollover)
    if policy.delete_after:
        phases["delete"] = {"min_age": policy.delete_after, "actions": {"delete": {}}}
    return {"policy": {
        "_meta": {"managed_by": "orchestrator-data", "index": policy.index, "source": policy.source,
                  "rollover_alias": layout.write_alias(policy.index),
                  "apply_with": {"index.lifecycle.name": f"{layout.prefix}-{policy.index}",
                                 "index.lifecycle.rollover_alias": layout.write_alias(policy.index)}},
        "phases": phases,
    }}
