"""The search indices' lifecycle policies, kept as data files: reading and checking them, and the
same policy in ILM's terms for a cluster that has ILM.

`search/policies/<index>.json` in the package, one per index; a file of the same name in
SEARCH_LIFECYCLE_DIR replaces the package's for that index. A policy has

    "rollover":  {condition: threshold, ...}   max_age, max_docs, max_size, max_primary_shard_size,
                                               max_primary_shard_docs, and the min_* guards of each
    "retention": {"delete_after": "30d"} | null

`min_docs` is 1 unless the policy says otherwise, so an empty index never rolls. Retention is refused
for the indices synced from PostgreSQL: their documents mirror rows, so deleting a backing index would
drop live rows from search (purge the rows in PostgreSQL and the sync deletes their documents).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator_data.errors import BadInput
from orchestrator_data.policy_files import policy_data, policy_texts
from orchestrator_data.search.errors import SearchError
from orchestrator_data.search.indices import Layout
from orchestrator_data.search.names import NAMES
from orchestrator_data.search.sources import SYNCED
from orchestrator_data.units import parse_bytes, parse_time

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


def threshold(kind: str, value) -> float:
    """A condition's threshold as a number (seconds, bytes, documents); ValueError says what it must be."""
    if kind == "time":
        return parse_time(value)
    if kind == "bytes":
        return parse_bytes(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("a whole number >= 0")
    return value


@dataclass(frozen=True)
class Policy:
    index: str
    source: str                          # the file it came from, for messages
    rollover: dict[str, str | int]       # condition -> threshold as written (min_docs defaulted to 1)
    delete_after: str | None = None      # retention; None keeps every backing index

    def thresholds(self) -> dict[str, float]:
        return {name: threshold(CONDITIONS[name][1], value) for name, value in self.rollover.items()}

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
            threshold(CONDITIONS[name][1], value)
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
