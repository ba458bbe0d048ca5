"""One lock per index, in PostgreSQL: whatever writes an index or moves its aliases holds it.

A PostgreSQL advisory lock per index (keyed on its read alias), held exclusively by a sync, reindex,
rollover, snapshot or metrics write, and shared by the partitions of a full load (they write disjoint
rows, so they may run together, but never while the write index or the aliases move)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import sqlalchemy as sa

from orchestrator_data.search.errors import SyncBusy, SyncDeferred

# a sync takes seconds; a reindex can take longer, and then a lifecycle step waits for the next run
LIFECYCLE_WAIT_S = 120.0


def _lock_key(alias: str) -> int:
    # the text is the key's identity: a changed text would let an old and a new process both hold "the" lock
    return int.from_bytes(hashlib.sha256(f"orchestrator-data search sync {alias}".encode()).digest()[:8],
                          "big", signed=True)


@contextmanager
def index_lock(engine: sa.Engine, alias: str, wait_s: float = 0.0, *, shared: bool = False) -> Iterator[None]:
    """The index's lock: held exclusively by whatever writes it or moves its aliases (sync, reindex,
    rollover, snapshot), shared by the partitions of a full load (they write disjoint rows, so they
    may run together, but never while the write index or the aliases move). Waits up to `wait_s` for
    it, then raises SyncBusy — SyncDeferred when an exclusive taker finds a full load holding it."""
    with index_locks(engine, [alias], wait_s, shared=shared):
        yield


def lifecycle_lock(engine: sa.Engine, alias: str, dry_run: bool) -> AbstractContextManager[None]:
    """The index's lock for a lifecycle step that changes it (rollover, retention), waiting up to
    LIFECYCLE_WAIT_S; a dry run only reads, and takes none."""
    return nullcontext() if dry_run else index_lock(engine, alias, wait_s=LIFECYCLE_WAIT_S)


def _full_loads_holding(conn: sa.Connection, key: int) -> int:
    """How many sessions hold `key` shared (partitions of a full load). A bigint advisory key shows in
    pg_locks as classid (high 32 bits) and objid (low 32 bits), objsubid 1."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return conn.execute(sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid) AND objsubid = 1"),
        {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF}).scalar_one()


@contextmanager
def index_locks(engine: sa.Engine, aliases: list[str], wait_s: float = 0.0, *,
                shared: bool = False) -> Iterator[None]:
    """Several indices' locks at once, on one connection (a snapshot takes all five). All or none:
    a try that finds one taken releases the others before waiting, so two takers never deadlock."""
    deadline = time.monotonic() + wait_s
    keys = [_lock_key(alias) for alias in aliases]
    take, free = (("pg_try_advisory_lock_shared", "pg_advisory_unlock_shared") if shared
                  else ("pg_try_advisory_lock", "pg_advisory_unlock"))
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")

        def release(held: list[int]) -> None:
            for key in reversed(held):
                conn.execute(sa.text(f"SELECT {free}(:k)"), {"k": key})

        while True:
            held = []
            for alias, key in zip(aliases, keys, strict=True):
                if not conn.execute(sa.text(f"SELECT {take}(:k)"), {"k": key}).scalar_one():
                    release(held)
                    busy, busy_key = alias, key
                    break
                held.append(key)
            else:
                break
            if time.monotonic() >= deadline:
                if shared:
                    raise SyncBusy(f"a sync, reindex, rollover or snapshot of {busy} holds its lock (waited "
                                   f"{wait_s:.0f} s); the partition loaded nothing: run it again")
                if loads := _full_loads_holding(conn, busy_key):
                    raise SyncDeferred(f"a full load of {busy} is running ({loads} partition(s) at work); "
                                       f"the incremental sync waits for it")
                raise SyncBusy(f"another sync, reindex or lifecycle step of {busy} is running")
            time.sleep(0.2)
        try:
            yield
        finally:
            release(held)
