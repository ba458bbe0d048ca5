"""Elasticsearch snapshots of the five indices: the repository, creating and listing them, their
retention, and the results of their restore checks as recorded in PostgreSQL (the checks themselves:
snapshot_checks.py).

* **Repository**: an `fs` repository (SEARCH_SNAPSHOT_REPOSITORY, default `<prefix>-snapshots`) at
  SEARCH_SNAPSHOT_LOCATION (default: the prefix, a relative path every node resolves under its
  `path.repo`; on a real cluster an absolute path on storage all nodes share, listed in `path.repo`).
  Registered idempotently before every operation.
* **Create**: `<prefix>-YYYYMMDD-HHMMSS-<4 hex>` (UTC) of every backing index of the five read aliases,
  without global state. The indices' locks are held while they are refreshed, counted and
  snapshotted, so the counts recorded in the snapshot's metadata are exactly what it holds.
* **Restore check** (snapshot_checks.py): restores a snapshot into renamed indices and compares them;
  each result is recorded in search_restore_checks, which the listing and the freshness read here.
* **Prune**: keeps the newest N successful snapshots; deletes older ones and failed or partial ones
  older than the newest success; never the newest success, never one in progress.
* **Broken snapshots**: a snapshot the repository lists but whose own files cannot be read (its
  `snap-*.dat` gone) is listed as BROKEN with the reason, never chosen as `latest`, refused by name
  with one line naming it, and deleted by prune (once a readable success exists) — instead of one
  such snapshot failing every listing, check and prune of the repository.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from elasticsearch import ApiError, Elasticsearch, NotFoundError

from orchestrator_data.errors import BadInput
from orchestrator_data.freshness import Freshness, freshness
from orchestrator_data.postgres import models
from orchestrator_data.search.errors import SearchError, elasticsearch_errors
from orchestrator_data.search.indices import NAMES, Layout
from orchestrator_data.search.locks import index_locks

LOCK_WAIT_S = 120.0             # a running sync of an index finishes within this; then the snapshot fails
# Elasticsearch refuses snapshot metadata of 1024 bytes or more: past this, counts are kept per index
# rather than per backing index (still exact; only less precise about where a loss is).
METADATA_BUDGET = 900
SUCCESS, IN_PROGRESS = "SUCCESS", "IN_PROGRESS"
BROKEN = "BROKEN"  # ours, not Elasticsearch's: listed by the repository, its own files unreadable


class SnapshotError(SearchError):
    """A snapshot operation that could not be done (the cluster failed, a check could not run)."""


class SnapshotNotFound(SnapshotError, BadInput):
    """No such snapshot in the repository (bad input)."""


class RepositoryError(SnapshotError, BadInput):
    """The repository cannot be registered where SEARCH_SNAPSHOT_LOCATION says (bad configuration)."""


@dataclass(frozen=True)
class Repository:
    name: str
    location: str


def repository_of(settings, layout: Layout, *, name: str | None = None, location: str | None = None) -> Repository:
    """The repository from explicit values, else the settings, else the defaults under the layout's prefix."""
    return Repository(name or settings.search_snapshot_repository or f"{layout.prefix}-snapshots",
                      location or settings.search_snapshot_location or layout.prefix)


@dataclass
class RestoreCheckRecord:
    """One restore check's result as recorded in PostgreSQL."""

    snapshot: str
    snapshot_started_at: datetime
    checked_at: datetime
    ok: bool
    summary: dict

    @property
    def id(self) -> str:
        return self.snapshot

    @property
    def created_at(self) -> datetime:
        """The freshness clock: how old the data proved restorable is."""
        return self.snapshot_started_at


@dataclass
class SnapshotInfo:
    name: str
    state: str                          # SUCCESS, PARTIAL, FAILED, IN_PROGRESS, INCOMPATIBLE; BROKEN
    started_at: datetime
    finished_at: datetime | None
    indices: list[str]
    recorded: dict[str, int]            # documents per backing index (or per index, see METADATA_BUDGET)
    size_bytes: int | None = None
    restore_check: RestoreCheckRecord | None = None
    problem: str | None = None          # why a BROKEN snapshot cannot be read

    @property
    def id(self) -> str:
        return self.name

    @property
    def created_at(self) -> datetime:
        return self.started_at

    @property
    def documents(self) -> int:
        return sum(self.recorded.values())

    @property
    def duration_s(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None

    def as_dict(self) -> dict:
        check = self.restore_check
        return {"name": self.name, "state": self.state, "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "duration_s": self.duration_s, "indices": self.indices, "documents": self.documents,
                "recorded": self.recorded, "size_bytes": self.size_bytes, "problem": self.problem,
                "restore_check": None if check is None else {
                    "ok": check.ok, "checked_at": check.checked_at.isoformat(), "summary": check.summary}}


@dataclass
class PruneReport:
    deleted: list[str]
    kept: list[str]
    dry_run: bool


# -- repository -------------------------------------------------------------------------------------
def _error_type(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    return error.get("type", "") if isinstance(error, dict) else ""


def _reason(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    causes = error.get("root_cause") or [error]
    return str(causes[0].get("reason") or exc.message)[:300]


def ensure_repository(client: Elasticsearch, repository: Repository) -> bool:
    """Register the `fs` repository (idempotent); True when it was (re-)registered now."""
    with elasticsearch_errors(f"registering snapshot repository {repository.name}", SnapshotError, ""):
        try:
            current = client.snapshot.get_repository(name=repository.name)[repository.name]
        except NotFoundError:
            current = None
        if current and current.get("type") == "fs" and \
                current.get("settings", {}).get("location") == repository.location:
            return False
        try:
            client.snapshot.create_repository(name=repository.name, verify=True, repository={
                "type": "fs", "settings": {"location": repository.location}})
        except ApiError as exc:
            if _error_type(exc) in ("repository_exception", "repository_verification_exception"):
                raise RepositoryError(
                    f"SEARCH_SNAPSHOT_LOCATION '{repository.location}' cannot hold snapshot repository "
                    f"{repository.name}: it must be a relative path or a directory under the nodes' path.repo "
                    f"(Elasticsearch: {_reason(exc)})") from None
            raise
    return True


# -- listing ----------------------------------------------------------------------------------------
def _name_pattern(layout: Layout) -> re.Pattern:
    return re.compile(rf"{re.escape(layout.prefix)}-\d{{8}}-\d{{6}}-[0-9a-f]{{4}}")


def snapshot_name(layout: Layout, now: datetime | None = None) -> str:
    return f"{layout.prefix}-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _utc(millis: int | None) -> datetime | None:
    return None if not millis else datetime.fromtimestamp(millis / 1000, UTC)


def _info(raw: dict) -> SnapshotInfo:
    documents = (raw.get("metadata") or {}).get("documents") or {}
    return SnapshotInfo(raw["snapshot"], raw.get("state", "UNKNOWN"), _utc(raw.get("start_time_in_millis")),
                        _utc(raw.get("end_time_in_millis")), sorted(raw.get("indices", [])),
                        {str(k): int(v) for k, v in documents.items()})


def _named_time(layout: Layout, name: str) -> datetime:
    """The UTC time a snapshot's name carries (snapshot_name writes it): all a BROKEN one still tells."""
    return datetime.strptime(name.removeprefix(f"{layout.prefix}-")[:15], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)


def _problem(exc: ApiError) -> str:
    """Why a snapshot cannot be read, in one line: the error and its cause (e.g. the missing file)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    cause = error.get("caused_by") if isinstance(error.get("caused_by"), dict) else {}
    text = str(error.get("reason") or exc.message)
    if cause:
        text += f" ({cause.get('type', 'cause')}: {cause.get('reason', '')})"
    return " ".join(text.split())[:300]


def _order(layout: Layout, snapshot: SnapshotInfo) -> tuple:
    """Oldest first, by the second in the name (a BROKEN snapshot's time is known to no finer), then
    the readable ones of that second by their start, then the broken ones."""
    started = snapshot.started_at.timestamp() if snapshot.state != BROKEN and snapshot.started_at else 0.0
    return _named_time(layout, snapshot.name), snapshot.state == BROKEN, started


def _read_alone(client: Elasticsearch, repository: Repository, layout: Layout, name: str) -> SnapshotInfo:
    """A snapshot the repository lists but the listing could not read: read by itself, it either says
    why (BROKEN) or was only caught changing (then it is what it reads as now)."""
    try:
        raw = client.snapshot.get(repository=repository.name, snapshot=name)["snapshots"]
    except ApiError as exc:
        return SnapshotInfo(name, BROKEN, _named_time(layout, name), None, [], {}, problem=_problem(exc))
    if not raw:
        return SnapshotInfo(name, BROKEN, _named_time(layout, name), None, [], {},
                            problem="listed by the repository, not found when read by name")
    return _info(raw[0])


def _sizes(client: Elasticsearch, repository: Repository, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    status = client.snapshot.status(repository=repository.name, snapshot=",".join(names))
    return {s["snapshot"]: s["stats"]["total"]["size_in_bytes"] for s in status["snapshots"]}


def list_snapshots(client: Elasticsearch, repository: Repository, layout: Layout, engine: sa.Engine | None = None,
                   *, sizes: bool = True) -> list[SnapshotInfo]:
    """This layout's snapshots in the repository, oldest first, BROKEN ones among them; with `engine`,
    each one's latest restore check; with `sizes`, each finished one's size (the snapshot status API)."""
    ensure_repository(client, repository)
    with elasticsearch_errors(f"listing snapshots of {repository.name}", SnapshotError, ""):
        pattern = _name_pattern(layout)
        # The repository's index names every snapshot without opening its files (verbose=false). The
        # details come from each snapshot's own files, skipping any that cannot be read (one such
        # snapshot would otherwise fail the whole listing); those are then read alone, for the reason.
        listed = [s["snapshot"] for s in client.snapshot.get(repository=repository.name, snapshot="*",
                                                             verbose=False)["snapshots"]
                  if pattern.fullmatch(s["snapshot"])]
        raw = client.snapshot.get(repository=repository.name, snapshot="*", sort="start_time", order="asc",
                                  ignore_unavailable=True)
        found = [_info(s) for s in raw["snapshots"] if pattern.fullmatch(s["snapshot"])]
        readable = {s.name for s in found}
        unreadable = [_read_alone(client, repository, layout, name) for name in listed if name not in readable]
        if unreadable:
            found = sorted(found + unreadable, key=lambda s: _order(layout, s))
        if sizes:
            measured = _sizes(client, repository, [s.name for s in found if s.state not in (IN_PROGRESS, BROKEN)])
            for snapshot in found:
                snapshot.size_bytes = measured.get(snapshot.name)
    if engine is not None:
        checks = latest_restore_checks(engine, repository)
        for snapshot in found:
            snapshot.restore_check = checks.get(snapshot.name)
    return found


def get_snapshot(client: Elasticsearch, repository: Repository, layout: Layout, snapshot: str = "latest") -> SnapshotInfo:
    """A snapshot by name (a BROKEN one too), or 'latest': the newest successful one that can be read.
    SnapshotNotFound otherwise."""
    snapshots = list_snapshots(client, repository, layout, sizes=False)
    if snapshot == "latest":
        successes = [s for s in snapshots if s.state == SUCCESS]
        if not successes:
            raise SnapshotNotFound(f"no successful snapshot in repository {repository.name}")
        return successes[-1]
    for found in snapshots:
        if found.name == snapshot:
            return found
    raise SnapshotNotFound(f"no snapshot '{snapshot}' of prefix {layout.prefix} in repository {repository.name}")


# -- create -----------------------------------------------------------------------------------------
def _backing_indices(client: Elasticsearch, layout: Layout) -> dict[str, list[str]]:
    backing = {}
    for name in NAMES:
        try:
            backing[name] = sorted(client.indices.get_alias(name=layout.read_alias(name)))
        except NotFoundError:
            raise SnapshotError(f"index {layout.read_alias(name)} does not exist: run `orchestrator-data search init`") \
                from None
    return backing


def _recorded_counts(layout: Layout, backing: dict[str, list[str]], counts: dict[str, int]) -> dict[str, int]:
    """Documents per backing index (named without the prefix), or per index when that would not fit."""
    per_backing = {index.removeprefix(f"{layout.prefix}-"): counts[index] for indices in backing.values()
                   for index in indices}
    if len(json.dumps(per_backing)) <= METADATA_BUDGET:
        return per_backing
    return {name: sum(counts[i] for i in indices) for name, indices in backing.items()}


def create_snapshot(engine: sa.Engine, client: Elasticsearch, layout: Layout, repository: Repository, *,
                    wait_s: float = LOCK_WAIT_S, now: datetime | None = None) -> SnapshotInfo:
    """Snapshot every backing index of the five indices; returns the finished snapshot with its size.
    A snapshot that did not succeed raises SnapshotError (it stays listed, and prune removes it)."""
    ensure_repository(client, repository)
    name = snapshot_name(layout, now)
    with elasticsearch_errors(f"snapshot {name}", SnapshotError, ""), index_locks(engine, [layout.read_alias(n) for n in NAMES], wait_s):
        backing = _backing_indices(client, layout)
        every = [index for indices in backing.values() for index in indices]
        client.indices.refresh(index=",".join(every))
        counts = {index: client.count(index=index)["count"] for index in every}
        response = client.snapshot.create(
            repository=repository.name, snapshot=name, indices=",".join(every), include_global_state=False,
            wait_for_completion=True, partial=False,
            metadata={"prefix": layout.prefix, "documents": _recorded_counts(layout, backing, counts)})
    info = _info(response["snapshot"])
    if info.state != SUCCESS:
        failures = "; ".join(str(f.get("reason")) for f in response["snapshot"].get("failures", [])[:3])
        raise SnapshotError(f"snapshot {name} ended {info.state}" + (f": {failures}" if failures else ""))
    with elasticsearch_errors(f"size of snapshot {name}", SnapshotError, ""):
        info.size_bytes = _sizes(client, repository, [name]).get(name)
    return info


# -- results in PostgreSQL --------------------------------------------------------------------------
def _records(engine: sa.Engine, repository: Repository, *where) -> list[RestoreCheckRecord]:
    table = models.search_restore_checks
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.repository == repository.name, *where)
                            .order_by(table.c.checked_at, table.c.id)).mappings()
        return [RestoreCheckRecord(r["snapshot"], r["snapshot_started_at"], r["checked_at"], r["ok"], r["summary"])
                for r in rows]


def latest_restore_checks(engine: sa.Engine, repository: Repository) -> dict[str, RestoreCheckRecord]:
    """Each snapshot's latest restore check."""
    return {record.snapshot: record for record in _records(engine, repository)}


def latest_passing_check(engine: sa.Engine, repository: Repository, layout: Layout) -> RestoreCheckRecord | None:
    """The passing restore check of the newest snapshot, from PostgreSQL: still counts once retention
    has deleted that snapshot (a weekly check must not go stale the hour a daily prune removes it)."""
    table = models.search_restore_checks
    passing = [r for r in _records(engine, repository, table.c.ok.is_(True))
               if _name_pattern(layout).fullmatch(r.snapshot)]
    return max(passing, key=lambda r: r.snapshot_started_at, default=None)


# -- retention --------------------------------------------------------------------------------------
def to_prune(snapshots: list[SnapshotInfo], keep: int) -> list[str]:
    """Which of `snapshots` (oldest first) retention deletes."""
    successes = [s for s in snapshots if s.state == SUCCESS]
    if not successes:
        # nothing proven restorable yet: keep every attempt to look at, broken ones too (with no
        # readable snapshot at all, the repository itself may be what is wrong)
        return []
    kept = {s.name for s in successes[-keep:]}
    newest = successes[-1].started_at
    # a BROKEN snapshot can never be restored, whatever its age
    return [s.name for s in snapshots if s.name not in kept and s.state != IN_PROGRESS
            and (s.state in (SUCCESS, BROKEN) or s.started_at < newest)]


def prune(client: Elasticsearch, repository: Repository, layout: Layout, keep: int, *,
          dry_run: bool = False) -> PruneReport:
    """Keep the newest `keep` successful snapshots; delete older successes, BROKEN snapshots, and failed
    or partial snapshots older than the newest success. Never the newest success, never one in progress."""
    if keep < 1:
        raise SnapshotError("SEARCH_SNAPSHOT_KEEP (--keep) must be at least 1: the newest snapshot is always kept")
    snapshots = list_snapshots(client, repository, layout, sizes=False)
    doomed = to_prune(snapshots, keep)
    if doomed and not dry_run:
        with elasticsearch_errors(f"deleting snapshots of {repository.name}", SnapshotError, ""):
            client.snapshot.delete(repository=repository.name, snapshot=",".join(doomed))
    return PruneReport(doomed, [s.name for s in snapshots if s.name not in doomed], dry_run)


# -- freshness --------------------------------------------------------------------------------------
def snapshot_freshness(client: Elasticsearch, repository: Repository, layout: Layout, max_age_hours: float,
                       now: datetime | None = None) -> Freshness:
    successes = [s for s in list_snapshots(client, repository, layout, sizes=False) if s.state == SUCCESS]
    return freshness("successful", successes[-1] if successes else None, max_age_hours, now, kind="search snapshot")
