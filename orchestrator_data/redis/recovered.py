"""After the database moved back in time (a recovery, a restore over the live database, a failover):
dropping what Redis derived from rows the recovered database no longer has.

| keys | after a recovery | why |
|---|---|---|
| `execution:status:{id}` | dropped when the execution is gone | live state of an execution that, for the database, never ran |
| `queue:{type}`, `dead_letter:{type}` entries whose payload names an `execution_id` that is gone | dropped (acknowledged in every group, deleted) | a worker would run, or an operator replay, work for an execution that does not exist |
| `cache:*`, `cache_lock:*` | all dropped | any value may have been read after the recovery point, and none carries a version to tell; the database refills them |
| `session:*`, `user_sessions:*` of users that are gone | revoked | a session must not authenticate a user the database does not have |
| sessions of users that exist, `rate_limit:*`, `cache_stats` | kept | not derived from rows: signing everyone out, or handing every client a fresh burst, would punish users for an operator's recovery |
| pub/sub channels | nothing to drop | a channel stores nothing; a watcher of a dropped execution sees no more events and times out |

The state of an execution the database still has is kept, even when it is further on than the row
(the worker really did that work; it reports again). Keys and entries written after `before_ms` (the
moment the caller started) are never dropped: they were written against the recovered database. Ids
that are not UUIDs are not this database's executions or users, and are left alone.

The database is asked through two callables (which of these ids exist), so this module knows Redis only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import redis

from orchestrator_data.redis._codec import text
from orchestrator_data.redis.errors import translated
from orchestrator_data.redis.keyspace import (
    CACHE,
    CACHE_LOCK,
    DEAD_LETTER,
    EXECUTION_STATUS,
    QUEUE,
    USER_SESSIONS,
)
from orchestrator_data.redis.sessions import SessionStore

BATCH = 1000
Existing = Callable[[list[str]], set[str]]  # of these ids (UUIDs as text), the ones the database has


@dataclass
class Dropped:
    execution_status: int = 0
    queue_entries: int = 0
    dead_letters: int = 0
    cache: int = 0
    sessions: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())


def _uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _scan(client: redis.Redis, match: str, type_: str | None = None) -> Iterator[str]:
    for key in client.scan_iter(match=match, count=BATCH, _type=type_):
        yield text(key)


def _batches(items: list, size: int = BATCH) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def drop_execution_status(client: redis.Redis, executions: Existing, before_ms: int) -> int:
    """Delete the live state of executions the database does not have (created before `before_ms`)."""
    found = {}
    for key in _scan(client, EXECUTION_STATUS.glob):
        if (execution := _uuid(key.removeprefix(EXECUTION_STATUS.prefix))) is not None:
            found[execution] = key
    dropped = 0
    for batch in _batches(sorted(found)):
        alive = executions(batch)
        gone = [found[e] for e in batch if e not in alive]
        if not gone:
            continue
        pipe = client.pipeline(transaction=False)
        for key in gone:
            pipe.hget(key, "created_at")
        created = pipe.execute()
        doomed = [key for key, at in zip(gone, created) if at is None or int(text(at)) < before_ms]
        if doomed:
            dropped += int(client.unlink(*doomed))
    return dropped


def _execution_of(fields: dict) -> str | None:
    """The execution a queue entry is for: its JSON payload's `execution_id` (the product's convention)."""
    try:
        payload = json.loads(text(fields.get(b"payload") or fields.get("payload") or b""))
    except (TypeError, ValueError):
        return None
    value = payload.get("execution_id") if isinstance(payload, dict) else None
    return _uuid(str(value)) if value is not None else None


def _entries_for_gone(client: redis.Redis, stream: str, executions: Existing, before_ms: int) -> list[str]:
    """Ids of the entries of `stream` added before `before_ms` whose execution the database does not have."""
    named: dict[str, str] = {}
    start = "-"
    while True:
        page = client.xrange(stream, min=start, max=f"({before_ms}-0", count=BATCH)
        for entry_id, fields in page:
            if (execution := _execution_of(fields)) is not None:
                named[text(entry_id)] = execution
        if len(page) < BATCH:
            break
        start = "(" + text(page[-1][0])
    ids = sorted(set(named.values()))
    alive: set[str] = set()
    for batch in _batches(ids):
        alive |= executions(batch)
    return [entry for entry, execution in named.items() if execution not in alive]


def drop_queue_entries(client: redis.Redis, executions: Existing, before_ms: int) -> tuple[int, int]:
    """Remove queue and dead-letter entries for executions the database does not have: acknowledged in
    every consumer group (XDEL alone leaves them pending) and deleted. Returns (queue entries, dead letters)."""
    queued = dead = 0
    for stream in _scan(client, QUEUE.glob, "stream"):
        if not (doomed := _entries_for_gone(client, stream, executions, before_ms)):
            continue
        groups = [text(g["name"]) for g in client.xinfo_groups(stream)]
        pipe = client.pipeline(transaction=True)
        for group in groups:
            pipe.xack(stream, group, *doomed)
        pipe.xdel(stream, *doomed)
        queued += int(pipe.execute()[-1])
    for stream in _scan(client, DEAD_LETTER.glob, "stream"):
        if doomed := _entries_for_gone(client, stream, executions, before_ms):
            dead += int(client.xdel(stream, *doomed))
    return queued, dead


def drop_cache(client: redis.Redis) -> int:
    """Every cached value and loader lock (the counters in cache_stats stay)."""
    dropped = 0
    for pattern in (CACHE, CACHE_LOCK):
        keys = list(_scan(client, pattern.glob))
        for batch in _batches(keys):
            dropped += int(client.unlink(*batch))
    return dropped


def revoke_sessions_of_gone_users(client: redis.Redis, users: Existing) -> int:
    """Revoke every session of users the database does not have; returns how many sessions were live."""
    found = {}
    for key in _scan(client, USER_SESSIONS.glob):
        if (user := _uuid(key.removeprefix(USER_SESSIONS.prefix))) is not None:
            found[user] = key
    store = SessionStore(client)
    revoked = 0
    for batch in _batches(sorted(found)):
        alive = users(batch)
        revoked += sum(store.revoke_user(user) for user in batch if user not in alive)
    return revoked


def drop_state_of_the_lost_future(client: redis.Redis, executions: Existing, users: Existing,
                                  before_ms: int) -> Dropped:
    """Everything above, in one pass over the keyspace (SCAN, never KEYS). Raises RedisUnavailable."""
    with translated("drop Redis state the recovered database no longer has"):
        dropped = Dropped(execution_status=drop_execution_status(client, executions, before_ms))
        dropped.queue_entries, dropped.dead_letters = drop_queue_entries(client, executions, before_ms)
        dropped.cache = drop_cache(client)
        dropped.sessions = revoke_sessions_of_gone_users(client, users)
    return dropped
