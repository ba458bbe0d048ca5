"""Clients follow the primary: every engine of the project reconnects through a failover, and work cut off
by one is run again only when that is safe.

How a client finds the primary is libpq's: a multi-host DATABASE_URL (`postgresql://u@db1:5432,db2:5432/db
?target_session_attrs=read-write`, urls.py keeps every host) makes each new connection try the hosts in
order and keep the writable one; an engine's endpoint (Patroni behind a proxy) is one host that moves. What
this module adds, installed on every engine `connections.postgres_engine` makes:

* **Bounded reconnect.** While no host accepts a read-write session — the primary is gone and the standby
  not promoted yet — opening a connection is retried with backoff for DATABASE_RECONNECT_TIMEOUT_S, then
  fails with the driver's error (one line at the CLI). pool_pre_ping drops pooled connections to the old
  primary before they are handed out.
* **A demoted server is left.** A statement refused as read-only (SQLSTATE 25006: the pooled connection's
  server became a standby) invalidates its connection, so the next one goes to the new primary.
* **Cut-off work.** `run_again_if_cut_off` runs work that is safe to repeat (an idempotent sync, an upsert)
  again on a new connection; anything else that loses its connection mid-write raises `WriteCutOff`: one
  line saying its outcome is unknown and nothing was repeated — never silently lost.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from orchestrator_data.errors import OperationFailed
from orchestrator_data.redaction import describe_error

log = logging.getLogger(__name__)
T = TypeVar("T")

# what a server says while it cannot take a session: shutting down, starting up, in recovery
_NOT_NOW = {"57P01", "57P02", "57P03"}
READ_ONLY = "25006"
# refused for good, not for now: retrying cannot help (libpq gives no SQLSTATE for these on connect)
_PERMANENT = ("authentication failed", "does not exist", "no pg_hba.conf entry", "permission denied",
              "too many connections")
# each engine's reconnect budget, set when the engine is made (engines are not ours to add attributes to)
_budgets: weakref.WeakKeyDictionary[sa.Engine, float] = weakref.WeakKeyDictionary()
# a health check reports what it finds now: inside `reporting_now()` no connection waits for a primary
_waiting: ContextVar[bool] = ContextVar("orchestrator_data_wait_for_primary", default=True)


@contextmanager
def reporting_now() -> Iterator[None]:
    """Connections opened inside fail at once instead of waiting out a failover (health checks, status)."""
    token = _waiting.set(False)
    try:
        yield
    finally:
        _waiting.reset(token)


class WriteCutOff(OperationFailed):
    """The connection was lost while a write was under way: it may or may not have committed."""


def _sqlstate(exc: BaseException) -> str | None:
    original = getattr(exc, "orig", exc)
    return getattr(original, "sqlstate", None) or getattr(getattr(original, "diag", None), "sqlstate", None)


def is_cut_off(exc: BaseException) -> bool:
    """The connection to PostgreSQL was lost or refused, or landed on a server that cannot take the work
    (starting, stopping, read-only): what a failover looks like from a client."""
    import psycopg

    if any(text in str(getattr(exc, "orig", None) or exc) for text in _PERMANENT):
        return False
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated or _sqlstate(exc) in _NOT_NOW | {READ_ONLY}:
            return True
        return isinstance(exc, sa.exc.OperationalError) and _sqlstate(exc) is None
    if isinstance(exc, psycopg.Error):
        return isinstance(exc, psycopg.OperationalError) or exc.sqlstate in _NOT_NOW | {READ_ONLY}
    return isinstance(exc, (ConnectionError, TimeoutError))


def reconnect_budget(engine: sa.Engine) -> float:
    """Seconds this engine keeps trying to reach a primary (0: an engine made without it)."""
    return _budgets.get(engine, 0.0)


def follow_primary(engine: sa.Engine, reconnect_timeout_s: float) -> sa.Engine:
    """Install the bounded reconnect and the read-only handling on `engine`; returns it."""
    _budgets[engine] = reconnect_timeout_s

    @event.listens_for(engine, "handle_error")
    def _leave_a_demoted_server(context):
        # a pooled connection whose server became a standby: drop it (and the pool), never reuse it
        if _sqlstate(context.original_exception) == READ_ONLY:
            context.is_disconnect = True

    if reconnect_timeout_s <= 0:
        return engine

    @event.listens_for(engine, "do_connect")
    def _connect_until_a_primary_answers(dialect, conn_rec, cargs, cparams):
        if not _waiting.get():
            return dialect.connect(*cargs, **cparams)
        started = time.monotonic()
        for attempt in _while_cut_off(reconnect_timeout_s, _log_retry(started)):
            with attempt:
                return dialect.connect(*cargs, **cparams)
        raise AssertionError("unreachable")

    return engine


def _while_cut_off(budget_s: float, before_sleep) -> Retrying:
    """Attempts with backoff (0.1 s doubling to 2 s) while the error is a cut-off, for `budget_s` seconds;
    then the last error is raised."""
    return Retrying(retry=retry_if_exception(is_cut_off), stop=stop_after_delay(budget_s),
                    wait=wait_exponential_jitter(multiplier=0.1, max=2.0), reraise=True, before_sleep=before_sleep)


def _log_retry(started: float):
    def before_sleep(state) -> None:
        log.warning("PostgreSQL not reachable as a primary (%s); retrying, %.1f s so far",
                    describe_error(state.outcome.exception()), time.monotonic() - started)
    return before_sleep


def run_again_if_cut_off(engine: sa.Engine, work: Callable[[], T], what: str) -> T:
    """Run `work` (safe to repeat: idempotent) and, when a failover cuts it off, again, for as long as the
    engine's reconnect budget allows; then raise the last error."""
    budget = reconnect_budget(engine)
    started = time.monotonic()
    for attempt in _while_cut_off(budget, _log_again(what, started)):
        with attempt:
            return work()
    raise AssertionError("unreachable")


def _log_again(what: str, started: float):
    def before_sleep(state) -> None:
        log.warning("%s cut off (%s); running it again (safe to repeat), %.1f s so far", what,
                    describe_error(state.outcome.exception()), time.monotonic() - started)
    return before_sleep


def write_once(work: Callable[[], T], what: str) -> T:
    """Run a write that is not safe to repeat; a failover cutting it off raises WriteCutOff (one line)."""
    try:
        return work()
    except Exception as exc:
        if is_cut_off(exc):
            raise WriteCutOff(
                f"{what}: the connection to PostgreSQL was lost during the write (a failover?); whether it "
                f"committed is unknown and it was not repeated: check, then run it again "
                f"({describe_error(exc)[:200]})") from exc
        raise
