"""Erasure of one person: PostgreSQL all-or-nothing, then Redis and Elasticsearch, each retried.

PostgreSQL: `gdpr_erase_user()` (revision 0008, owner-only) deletes the user row, lets the foreign
keys clear the references in rows the organization keeps, redacts the person's e-mail and name inside
audit rows' old/new values, writes an ERASURE audit row and the ledger row — one transaction, inside
which, before COMMIT, the erasure is appended (fsynced) to the ledger file outside the database
(gdpr/ledger.py): a ledger that cannot be written fails the erasure with nothing committed.
Redis: the person's sessions are revoked, `cache:user:{id}` is dropped and so is every cached value
that holds their e-mail or name. Elasticsearch: the incremental sync carries the cleared references
(owner_id, triggered_by) to the documents; then no workflow or execution document names the id.
A re-run for an erased person changes nothing in PostgreSQL but redoes the other two (idempotent), so
a run whose Redis or Elasticsearch part failed can be completed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import redis
import sqlalchemy as sa
from elasticsearch import Elasticsearch
from psycopg import errors as pg_errors

from orchestrator_data.gdpr import AlreadyErased, GdprError, UnknownUser, user_id as as_user_id
from orchestrator_data.gdpr.ledger import ErasureLedger, LedgerEntry, new_request_id
from orchestrator_data.postgres import models, roles
from orchestrator_data.redis.cache import Cache
from orchestrator_data.redis.sessions import SessionStore
from orchestrator_data.retry import transient_retrying
from orchestrator_data.search import sync
from orchestrator_data.search.errors import SyncError
from orchestrator_data.search.indices import Layout

ALREADY_ERASED_STATE = "OD409"  # raised by gdpr_erase_user
CACHE_TYPE = "user"
SEARCH_INDICES = ("workflows", "executions")  # the synced documents that reference a user by id
SCAN_BATCH = 500
ATTEMPTS = 5


class OwnerRequired(GdprError):
    """The login may not act as the owner role, which alone may run the erasure."""


@dataclass
class ErasureReport:
    user_id: str
    request_id: str = ""
    ledger_file: str | None = None                          # where the erasure was recorded outside the database
    already_erased: bool = False
    postgres: dict[str, int] = field(default_factory=dict)  # rows touched per table
    redis: dict[str, int] | None = None                     # sessions, cache_entries; None: not configured
    search: dict[str, int] | None = None                    # per index: documents still naming the id (0)
    errors: dict[str, str] = field(default_factory=dict)    # per system that still failed after the retries
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def erase_postgres(engine: sa.Engine, user: uuid.UUID, erased_by: str, ledger: ErasureLedger | None = None,
                   request_id: str | None = None) -> tuple[dict[str, int], list[str]]:
    """Run gdpr_erase_user as the owner; the rows touched per table, and the e-mail and name the erased
    row held (for Redis; kept in memory only). With a ledger, the erasure is appended to it after the
    function ran and before COMMIT (LedgerError: rolled back). Raises UnknownUser, AlreadyErased,
    OwnerRequired, LedgerError."""
    with engine.begin() as conn:
        if not roles.act_as_owner(conn):
            raise OwnerRequired(f"the database login may not act as {roles.OWNER_ROLE}, which runs the erasure")
        person = conn.execute(sa.select(models.users.c.email, models.users.c.display_name,
                                        models.users.c.organization_id)
                              .where(models.users.c.id == user)).first()
        try:
            counts = conn.execute(sa.text("SELECT gdpr_erase_user(:user, :by)"),
                                  {"user": user, "by": erased_by}).scalar_one()
        except sa.exc.DBAPIError as exc:
            if isinstance(exc.orig, pg_errors.NoDataFound):
                raise UnknownUser(f"no user {user}") from None
            if getattr(exc.orig, "sqlstate", None) == ALREADY_ERASED_STATE:
                raise AlreadyErased(f"user {user} was already erased") from None
            raise
        if ledger is not None:
            # now() is the transaction's start: the time gdpr_erasures records for this erasure
            erased_at = conn.execute(sa.text("SELECT now()")).scalar_one()
            ledger.append(LedgerEntry(user, person.organization_id if person else None, erased_at,
                                      request_id or new_request_id()))
    return {table: int(n) for table, n in counts.items()}, [v for v in (person[:2] if person else ()) if v]


def record_earlier_erasure(engine: sa.Engine, ledger: ErasureLedger, user: uuid.UUID, request_id: str) -> bool:
    """An erasure from before the ledger file (or a file restored from an old copy) that the database
    recorded: add it to the file, with the database's time and the organization of its ERASURE audit
    row. Returns whether a line was added."""
    if ledger.holds(user):
        return False
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT e.erased_at, (SELECT a.organization_id FROM audit_logs a WHERE a.action = 'ERASURE' "
            "AND a.table_name = 'users' AND a.record_id = e.user_id::text ORDER BY a.id LIMIT 1) "
            "FROM gdpr_erasures e WHERE e.user_id = :user"), {"user": user}).first()
    if row is None:
        return False
    ledger.append(LedgerEntry(user, row[1], row[0], request_id))
    return True


def erase_redis(client: redis.Redis, user: uuid.UUID, needles: list[str]) -> dict[str, int]:
    """Revoke the sessions, drop cache:user:{id} and every cached value holding a needle."""
    sessions = SessionStore(client).revoke_user(str(user))
    cache = Cache(client)
    dropped = cache.invalidate(CACHE_TYPE, str(user))
    lowered = [n.lower().encode() for n in needles]
    if lowered:
        batch: list[bytes] = []
        for key in client.scan_iter(match="cache:*", count=SCAN_BATCH):
            batch.append(key)
            if len(batch) >= SCAN_BATCH:
                dropped += _drop_mentions(client, batch, lowered)
                batch = []
        dropped += _drop_mentions(client, batch, lowered)
    return {"sessions": sessions, "cache_entries": dropped}


def _drop_mentions(client: redis.Redis, keys: list, needles: list[bytes]) -> int:
    if not keys:
        return 0
    values = client.mget(keys)
    doomed = [k for k, v in zip(keys, values) if v is not None and any(n in v.lower() for n in needles)]
    return int(client.unlink(*doomed)) if doomed else 0


def erase_search(engine: sa.Engine, client: Elasticsearch, layout: Layout, user: uuid.UUID) -> dict[str, int]:
    """Sync the indices that reference users, then count documents still naming the id (must be 0)."""
    present = [n for n in SEARCH_INDICES if client.indices.exists_alias(name=layout.read_alias(n))]
    if present:
        sync.sync(engine, client, layout, present)
    left: dict[str, int] = {}
    for name in present:
        field_name = {"workflows": "owner_id", "executions": "triggered_by"}[name]
        left[name] = client.count(index=layout.read_alias(name), query={"term": {field_name: str(user)}})["count"]
        if left[name]:
            raise SyncError(f"{left[name]} {name} document(s) still reference the erased user")
    return left


def _retried(report: ErasureReport, system: str, action) -> Any:
    """Run one system's part with backoff; a part that still fails is reported, never raised, so the
    others still run (PostgreSQL has committed by then)."""
    try:
        return transient_retrying(lambda exc: not isinstance(exc, GdprError), attempts=ATTEMPTS)(action)
    except Exception as exc:  # noqa: BLE001 - reported per system
        report.errors[system] = f"{type(exc).__name__}: {exc}"[:500]
        return None


def erase_user(engine: sa.Engine, redis_client: redis.Redis | None, search_client: Elasticsearch | None,
               layout: Layout | None, user_id: str | uuid.UUID, erased_by: str, *,
               ledger: ErasureLedger | None) -> ErasureReport:
    """Erase the person everywhere, recording the erasure in `ledger` (the file outside the database;
    None only where no restore ever needs it, e.g. a throwaway database). Raises InvalidUserId,
    UnknownUser (nothing changed), LedgerError (the ledger cannot be written: nothing committed); an
    already erased person gets report.already_erased, the ledger line if the file lacks it, and only
    the Redis and search parts redone."""
    started = time.monotonic()
    user = as_user_id(user_id)
    report = ErasureReport(str(user), request_id=new_request_id(),
                           ledger_file=str(ledger.path) if ledger is not None else None)
    needles: list[str] = []
    try:
        report.postgres, needles = erase_postgres(engine, user, erased_by, ledger, report.request_id)
    except AlreadyErased:
        report.already_erased = True
        if ledger is not None:
            record_earlier_erasure(engine, ledger, user, report.request_id)
    if redis_client is not None:
        report.redis = _retried(report, "redis", lambda: erase_redis(redis_client, user, needles))
    if search_client is not None and layout is not None:
        report.search = _retried(report, "search", lambda: erase_search(engine, search_client, layout, user))
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def ledger(engine: sa.Engine) -> list[tuple[uuid.UUID, datetime, str]]:
    """Every erasure recorded: (user id, erased_at, erased_by), oldest first; none before revision 0008."""
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass('public.gdpr_erasures')")).scalar_one() is None:
            return []
        return [tuple(r) for r in conn.execute(sa.select(
            models.gdpr_erasures.c.user_id, models.gdpr_erasures.c.erased_at, models.gdpr_erasures.c.erased_by
        ).order_by(models.gdpr_erasures.c.erased_at))]


def reapply_ledger(engine: sa.Engine, entries: list[tuple[uuid.UUID, datetime, str]], *,
                   as_owner: bool = True) -> dict[str, int]:
    """Erase again, in one transaction, everyone `entries` (a ledger) names; returns the rows touched
    per table, summed. An entry whose user the database never held only adds its ledger row.
    as_owner=False runs as the login itself: a restored scratch database (pg_restore --no-owner) is
    owned by the restoring login, and the owner role holds no privilege there."""
    totals: dict[str, int] = {}
    with engine.begin() as conn:
        if as_owner and not roles.act_as_owner(conn):
            raise OwnerRequired(f"the database login may not act as {roles.OWNER_ROLE}, which runs the erasure")
        for user, erased_at, erased_by in entries:
            counts = conn.execute(sa.text("SELECT gdpr_erase_user(:user, :by, :at)"),
                                  {"user": user, "by": erased_by, "at": erased_at}).scalar_one()
            for table, n in counts.items():
                totals[table] = totals.get(table, 0) + int(n)
    return totals


@dataclass
class Reapplied:
    erasures: int                 # ledger entries applied to the restored database
    rows: dict[str, int]          # rows touched per table by the re-application
    differences: list[str]        # what still shows an erased user (must be empty)


def reapply_after_restore(live: sa.Engine, restored: sa.Engine,
                          outside: list[tuple[uuid.UUID, datetime, str]] = ()) -> Reapplied:
    """The erasure ledgers — the live database's and `outside` (the ledger file's entries, as rows) —
    applied to a restored database, then proven: no erased user's row is left. The file counts because
    the live database may itself have gone back in time and forgotten erasures. A backup older than
    revision 0008 has no erasure function: if it holds an erased user, that is reported as a
    difference (restore it, migrate, then re-apply)."""
    earliest: dict[uuid.UUID, tuple[uuid.UUID, datetime, str]] = {}
    for entry in [*ledger(live), *outside]:
        if entry[0] not in earliest or entry[1] < earliest[entry[0]][1]:
            earliest[entry[0]] = entry
    entries = sorted(earliest.values(), key=lambda e: e[1])
    if not entries:
        return Reapplied(0, {}, [])
    ids = [entry[0] for entry in entries]
    with restored.connect() as conn:
        has_function = conn.execute(sa.text(
            "SELECT to_regprocedure('public.gdpr_erase_user(uuid, text, timestamptz)')")).scalar_one() is not None
    rows = reapply_ledger(restored, entries, as_owner=False) if has_function else {}
    with restored.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(models.users)
                            .where(models.users.c.id.in_(ids))).scalar_one()
    differences = []
    if left:
        why = "" if has_function else " (the backup predates revision 0008: migrate it, then re-apply)"
        differences.append(f"erasure ledger: {left} erased user(s) still in the restored database{why}")
    return Reapplied(len(entries), rows, differences)
