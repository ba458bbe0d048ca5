"""Restore checks of search snapshots: proof that a snapshot restores.

A check restores a snapshot into renamed indices (`<prefix>-restorecheck-<token>-…`, no aliases, so
nothing reads them), compares each one's documents with the count recorded in the snapshot (exact)
and a deterministic sample of documents with the live ones by id (same version: the same source; a
newer live version or a live delete is "changed since", not a failure), records the result in
PostgreSQL (search_restore_checks) and ALWAYS deletes the restored copies. One check of a prefix runs
at a time (a lock of its own); it removes what an interrupted earlier one left behind.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime

import sqlalchemy as sa
from elasticsearch import Elasticsearch, NotFoundError

from orchestrator_data.freshness import Freshness, freshness
from orchestrator_data.postgres import models
from orchestrator_data.search.errors import elasticsearch_errors
from orchestrator_data.search.indices import NAMES, Layout
from orchestrator_data.search.locks import index_lock
from orchestrator_data.search.snapshots import (
    LOCK_WAIT_S,
    BROKEN,
    SUCCESS,
    Repository,
    SnapshotError,
    SnapshotInfo,
    get_snapshot,
    latest_passing_check,
)

SAMPLE_SIZE = 50
RESTORE_CHECK = "restorecheck"


@dataclass
class IndexCheck:
    """One index's comparison in a restore check."""

    index: str
    recorded: int = 0               # documents the snapshot's metadata says it holds
    restored: int = 0               # documents in the restored copies
    live: int = 0                   # documents in the live index now
    sampled: int = 0
    equal: int = 0                  # sampled documents equal to the live ones
    changed: int = 0                # sampled documents updated or deleted live since the snapshot
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class RestoreCheckResult:
    snapshot: str
    ok: bool
    indices: list[IndexCheck]
    restored_indices: list[str]     # the copies, all deleted again
    restore_duration_s: float
    duration_s: float
    error: str | None = None        # the restore or the comparison could not run

    @property
    def problems(self) -> list[str]:
        return ([self.error] if self.error else []) + [p for i in self.indices for p in i.problems]

    def summary(self) -> dict:
        return {"ok": self.ok, "error": self.error, "restore_duration_s": round(self.restore_duration_s, 3),
                "duration_s": round(self.duration_s, 3),
                "indices": [asdict(i) for i in self.indices]}


# -- restore check ----------------------------------------------------------------------------------
def _restore_prefix(layout: Layout) -> str:
    return f"{layout.prefix}-{RESTORE_CHECK}-"


def _delete_indices(client: Elasticsearch, names: list[str]) -> None:
    # by name, in small groups: the cluster refuses wildcard deletes
    for start in range(0, len(names), 20):
        client.options(ignore_status=404).indices.delete(index=",".join(names[start:start + 20]))


def _leftovers(client: Elasticsearch, layout: Layout) -> list[str]:
    return sorted(client.indices.get(index=f"{_restore_prefix(layout)}*", allow_no_indices=True,
                                     expand_wildcards="all"))


def _owner(layout: Layout, backing_key: str) -> str | None:
    """The index (one of NAMES) a recorded key belongs to: a backing index name or an index name."""
    if backing_key in NAMES:
        return backing_key
    return next((n for n in NAMES if layout.version_of(n, f"{layout.prefix}-{backing_key}") is not None), None)


def _sample_seed(snapshot: str) -> int:
    return int.from_bytes(hashlib.sha256(snapshot.encode()).digest()[:4], "big")


def _compare_sample(client: Elasticsearch, layout: Layout, name: str, restored: list[str], check: IndexCheck,
                    snapshot: str, sample_size: int) -> None:
    """A deterministic sample (seeded by the snapshot's name) of the restored documents against the live ones."""
    sample = client.search(index=",".join(restored), size=sample_size, version=True, query={"function_score": {
        "query": {"match_all": {}}, "random_score": {"seed": _sample_seed(snapshot), "field": "_seq_no"}}})
    hits = sample["hits"]["hits"]
    if not hits:
        return
    live = client.search(index=layout.read_alias(name), size=len(hits), version=True,
                         query={"ids": {"values": [h["_id"] for h in hits]}})
    live_by_id = {h["_id"]: h for h in live["hits"]["hits"]}
    for hit in hits:
        check.sampled += 1
        now = live_by_id.get(hit["_id"])
        if now is None or now["_version"] > hit["_version"]:
            check.changed += 1          # deleted or updated since the snapshot: later history, not a loss
        elif now["_version"] < hit["_version"]:
            check.problems.append(f"{name} {hit['_id']}: live version {now['_version']} is older than the "
                                  f"snapshot's {hit['_version']}")
        elif now["_source"] != hit["_source"]:
            check.problems.append(f"{name} {hit['_id']}: restored document differs from the live one at the "
                                  f"same version {hit['_version']}")
        else:
            check.equal += 1


def _compare(client: Elasticsearch, layout: Layout, info: SnapshotInfo, restored_of: dict[str, str],
             sample_size: int) -> list[IndexCheck]:
    checks = {name: IndexCheck(name) for name in NAMES}
    restored_names = {name: [restored_of[i] for i in info.indices if _owner(layout, i.removeprefix(f"{layout.prefix}-"))
                             == name] for name in NAMES}
    for key, recorded in info.recorded.items():
        name = _owner(layout, key)
        if name is None:
            continue
        check = checks[name]
        copies = restored_names[name] if key in NAMES else [restored_of.get(f"{layout.prefix}-{key}", "")]
        restored = sum(client.count(index=c)["count"] for c in copies if c)
        check.recorded += recorded
        check.restored += restored
        if restored != recorded:
            check.problems.append(f"{layout.prefix}-{key}: {recorded} document(s) recorded in the snapshot, "
                                  f"{restored} restored")
    for name, check in checks.items():
        with suppress(NotFoundError):
            check.live = client.count(index=layout.read_alias(name))["count"]
        if restored_names[name]:
            _compare_sample(client, layout, name, restored_names[name], check, info.name, sample_size)
    return list(checks.values())


def restore_check(engine: sa.Engine, client: Elasticsearch, layout: Layout, repository: Repository,
                  snapshot: str = "latest", *, sample_size: int = SAMPLE_SIZE,
                  after_restore: Callable[[list[str]], None] | None = None) -> RestoreCheckResult:
    """Restore `snapshot` (a name or 'latest') into renamed indices, compare, record the result, and
    delete the copies whatever happens. `after_restore` is called with the restored indices' names
    before the comparison. SnapshotNotFound for an unknown name."""
    info = get_snapshot(client, repository, layout, snapshot)
    if info.state == BROKEN:
        raise SnapshotError(f"snapshot {info.name} cannot be read from repository {repository.name}, so it cannot "
                            f"be restored: {info.problem}; `search snapshot prune` deletes it")
    if info.state != SUCCESS:
        raise SnapshotError(f"snapshot {info.name} is {info.state}: only a successful snapshot can be restore-checked")
    if not info.recorded:
        raise SnapshotError(f"snapshot {info.name} records no document counts (not made by orchestrator-data?)")
    started = time.monotonic()
    restore_s = 0.0
    prefix = f"{_restore_prefix(layout)}{secrets.token_hex(3)}-"
    restored_of = {index: f"{prefix}{index}" for index in info.indices}
    checks: list[IndexCheck] = []
    error = None
    # one restore check of a prefix at a time; it removes what an interrupted earlier one left behind
    with index_lock(engine, f"{layout.prefix}-{RESTORE_CHECK}", wait_s=LOCK_WAIT_S):
        try:
            with elasticsearch_errors(f"restore check of {info.name}", SnapshotError, ""):
                _delete_indices(client, _leftovers(client, layout))
                response = client.snapshot.restore(
                    repository=repository.name, snapshot=info.name, indices=",".join(info.indices),
                    rename_pattern="(.+)", rename_replacement=f"{prefix}$1", include_aliases=False,
                    include_global_state=False, wait_for_completion=True,
                    index_settings={"index.number_of_replicas": 0})
                shards = response.get("snapshot", {}).get("shards", {})
                restore_s = time.monotonic() - started
                if shards.get("failed"):
                    raise SnapshotError(f"restore of {info.name}: {shards['failed']} of {shards.get('total')} "
                                        f"shard(s) failed")
                if after_restore is not None:
                    after_restore(sorted(restored_of.values()))
                client.indices.refresh(index=",".join(restored_of.values()))
                checks = _compare(client, layout, info, restored_of, sample_size)
        except SnapshotError as exc:
            error = str(exc)
        finally:
            with elasticsearch_errors(f"deleting the restored copies of {info.name}", SnapshotError,
                                           f"delete the indices {prefix}* by name"):
                _delete_indices(client, sorted(set(restored_of.values()) | set(_leftovers(client, layout))))
    result = RestoreCheckResult(info.name, error is None and all(c.ok for c in checks), checks,
                                sorted(restored_of.values()), restore_s, time.monotonic() - started, error)
    record_restore_check(engine, repository, info, result)
    return result


def record_restore_check(engine: sa.Engine, repository: Repository, info: SnapshotInfo,
                         result: RestoreCheckResult) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(models.search_restore_checks).values(
            repository=repository.name, snapshot=info.name, snapshot_started_at=info.started_at, ok=result.ok,
            summary=result.summary()))


def restore_check_freshness(engine: sa.Engine, repository: Repository, layout: Layout, max_age_hours: float,
                            now: datetime | None = None) -> Freshness:
    return freshness("restore-checked", latest_passing_check(engine, repository, layout), max_age_hours, now,
                     kind="search snapshot")
