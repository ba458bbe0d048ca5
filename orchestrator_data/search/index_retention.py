"""Retention of a search index's backing indices: those that rolled over at least the policy's
`delete_after` ago are deleted — never the write index. Holds the index's lock, so a backing index
never disappears under a sync that is writing, and the read alias always covers every backing index.
(Retention of PostgreSQL rows is orchestrator_data.retention; of snapshots, search.snapshots.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.search.errors import NOTHING_CHANGED, SearchError, SyncBusy, elasticsearch_errors
from orchestrator_data.search.indices import Layout, creation_dates, write_index
from orchestrator_data.search.locks import lifecycle_lock
from orchestrator_data.search.policies import Policy


class BackingAction(StrEnum):
    WRITE_INDEX = "write index"
    KEEP = "keep"
    DELETE = "delete"
    DELETED = "deleted"
    NO_RETENTION = "no retention"


class RetentionAction(StrEnum):
    DONE = "done"
    BUSY = "busy"
    MISSING = "missing"
    NO_RETENTION = "no retention"


@dataclass
class BackingAge:
    index: str
    write_index: bool
    rolled_over_at: datetime | None     # when it stopped being the write index
    age_s: float | None                 # since then
    action: BackingAction


@dataclass
class RetentionReport:
    index: str
    delete_after: str | None
    backing: list[BackingAge] = field(default_factory=list)
    action: RetentionAction = RetentionAction.DONE
    reason: str = ""

    @property
    def deleted(self) -> list[str]:
        return [b.index for b in self.backing if b.action == BackingAction.DELETED]

    @property
    def to_delete(self) -> list[str]:
        return [b.index for b in self.backing if b.action in (BackingAction.DELETE, BackingAction.DELETED)]


def rolled_over_at(client: Elasticsearch, layout: Layout, name: str, indices: list[str]) -> dict[str, datetime | None]:
    """When each backing index stopped being the write index: the rollover's own record (rollover_info,
    kept in the index's metadata by every rollover), else the creation of the index created next."""
    state = client.cluster.state(metric="metadata", index=",".join(indices),
                                 filter_path="metadata.indices.*.rollover_info")
    infos = (state.get("metadata") or {}).get("indices") or {}
    created = sorted(creation_dates(client, indices).items(), key=lambda item: item[1])
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
        with elasticsearch_errors(f"retention of {layout.read_alias(name)}", consequence=NOTHING_CHANGED), \
                lifecycle_lock(engine, layout.read_alias(name), dry_run):
            current = write_index(client, layout, name)
            if current is None:
                report.action, report.reason = RetentionAction.MISSING, f"{layout.read_alias(name)} does not exist"
                return report
            backing = sorted(client.indices.get_alias(name=layout.read_alias(name)))
            ages = rolled_over_at(client, layout, name, backing)
            limit = policy.delete_after_s
            for index in backing:
                when = ages.get(index)
                age = (now - when).total_seconds() if when else None
                if index == current:
                    action = BackingAction.WRITE_INDEX
                elif limit is None:
                    action = BackingAction.NO_RETENTION
                elif age is not None and age >= limit:
                    action = BackingAction.DELETE
                else:
                    action = BackingAction.KEEP
                report.backing.append(BackingAge(index, index == current, None if index == current else when,
                                                 None if index == current else age, action))
            doomed = [b for b in report.backing if b.action == BackingAction.DELETE]
            if doomed and not dry_run:
                # the write index can never be among them; checked again against the live alias
                if write_index(client, layout, name) in {b.index for b in doomed}:
                    raise SearchError(f"retention of {layout.read_alias(name)}: refusing to delete the write index")
                client.indices.delete(index=",".join(b.index for b in doomed))
                for b in doomed:
                    b.action = BackingAction.DELETED
    except SyncBusy as exc:
        report.action, report.reason = RetentionAction.BUSY, f"{exc}; the next run tries again"
        return report
    if limit is None:
        report.action, report.reason = RetentionAction.NO_RETENTION, "the policy keeps every backing index"
    return report
