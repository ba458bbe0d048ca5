"""Schema migrations: Alembic revisions run under a PostgreSQL advisory lock, with a ledger.

What this adds to Alembic (which has no concurrency guard, alembic#633, and whose version table
records neither checksum, duration, author nor outcome):

* an advisory lock held on a connection of its own (not the migrating one, so a revision may
  build an index CONCURRENTLY outside the transaction without deadlocking on it): concurrent runs
  queue, and each finds the work done by the one before;
* `_migration_history`: one row per attempt — revision, direction, sha256 of the revision file,
  when, how long, by whom, success, and the (redacted) error of a failure;
* refusal to go on when a revision already applied was edited since (its checksum changed);
* one transaction per revision (PostgreSQL DDL is transactional), with the ledger row written in
  the same transaction, so a revision is either applied and recorded or not there at all;
* after every upgrade and rollback, the security check (forced RLS, policies, audit triggers).

Pure core: no Dagster. The CLI (`orchestrator-data migrate`) and the `postgres_schema` asset both
call `upgrade`, `status` and `rollback` here. Beside it: `security` (the security check), `catalog`
(drift and table sizes) and `roles` (the three roles, acting as the owner).
"""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory

from orchestrator_data.errors import BadInput, OperationFailed
from orchestrator_data.postgres import client, models, roles, security
from orchestrator_data.postgres.catalog import VERSION_TABLE, table_exists
from orchestrator_data.postgres.client import Bind
from orchestrator_data.postgres.security import SecurityReport
from orchestrator_data.redaction import describe_error

log = logging.getLogger(__name__)

DEFAULT_SCRIPT_LOCATION = Path(__file__).resolve().with_name("migrations")
# One fixed key for the whole product ('orchmigr'); advisory locks are per database, so migrations
# of different databases in one cluster never wait for each other.
LOCK_KEY = 0x6F7263686D696772
SECURITY_REVISION = "0002"  # from this revision on, the security check must pass
LEDGER = models.migration_history.name
# A killed migrator must not leave its transaction (and locks) open until a long statement ends.
CLIENT_CHECK_INTERVAL = "1s"

# -- errors ---------------------------------------------------------------------------------------
class MigrationError(OperationFailed):
    """Base of every refusal or failure of the migrator; the message is safe to print."""


class UnknownRevision(MigrationError, BadInput):
    def __init__(self, revision: str, known: list[str]):
        self.revision = revision
        super().__init__(f"unknown revision '{revision}'; known: {', '.join(known) or 'none'} (or 'base'/'head')")


class MigrationChecksumMismatch(MigrationError):
    """An applied revision's file no longer has the checksum it was applied with."""

    def __init__(self, revision: str, recorded: str, current: str, path: str):
        self.revision, self.recorded, self.current, self.path = revision, recorded, current, path
        super().__init__(
            f"revision {revision} was edited after it was applied: {Path(path).name} has sha256 "
            f"{current[:12]}…, the ledger recorded {recorded[:12]}…. Restore the file and put the change "
            f"in a new revision."
        )


class MigrationStateError(MigrationError):
    """The database and the revision files disagree in a way the migrator will not guess about."""


class MigrationLockTimeout(MigrationError):
    pass


class MigrationFailed(MigrationError):
    def __init__(self, revision: str, direction: str, error: str):
        self.revision, self.direction, self.error = revision, direction, error
        super().__init__(f"{direction} of revision {revision} failed and was rolled back: {error}")


class SecurityCheckFailed(MigrationError):
    def __init__(self, report: SecurityReport, migration: MigrationReport | None = None):
        self.report, self.migration = report, migration
        shown = "; ".join(report.problems[:10])
        more = f" (+{len(report.problems) - 10} more)" if len(report.problems) > 10 else ""
        super().__init__(f"security check failed: {shown}{more}")


# -- reports --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AppliedRevision:
    revision: str
    description: str
    direction: str  # "upgrade" | "downgrade"
    checksum: str
    duration_ms: int


@dataclass
class MigrationReport:
    direction: str
    start_revision: str | None
    end_revision: str | None
    head: str
    applied: list[AppliedRevision] = field(default_factory=list)
    lock_wait_ms: int = 0
    security: SecurityReport | None = None  # None while the database is below SECURITY_REVISION

    @property
    def applied_revisions(self) -> list[str]:
        return [a.revision for a in self.applied]

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LedgerEntry:
    revision: str
    direction: str
    checksum: str
    applied_at: datetime
    duration_ms: int
    applied_by: str
    success: bool
    error: str | None


@dataclass(frozen=True)
class RevisionStatus:
    revision: str
    description: str
    state: str  # "applied" | "pending" | "edited" | "unrecorded"
    file_checksum: str
    applied_checksum: str | None = None
    applied_at: datetime | None = None
    duration_ms: int | None = None
    applied_by: str | None = None


@dataclass
class MigrationStatus:
    current: str | None
    head: str
    revisions: list[RevisionStatus]
    history: list[LedgerEntry]  # the most recent attempts, newest first, failures included

    @property
    def pending(self) -> list[str]:
        return [r.revision for r in self.revisions if r.state == "pending"]

    @property
    def problems(self) -> list[RevisionStatus]:
        return [r for r in self.revisions if r.state in ("edited", "unrecorded")]

    def as_dict(self) -> dict:
        return asdict(self) | {"pending": self.pending}


# -- plumbing -------------------------------------------------------------------------------------
def _config(script_location: str | Path | None, connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location or DEFAULT_SCRIPT_LOCATION))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _chain(script_location) -> list[Script]:
    """The revisions from base to head; a branched history is refused."""
    scripts = ScriptDirectory.from_config(_config(script_location))
    heads = scripts.get_heads()
    if len(heads) > 1:
        raise MigrationStateError(f"the revisions have several heads ({', '.join(heads)}); merge them first")
    chain = list(scripts.walk_revisions("base", "heads"))
    chain.reverse()
    return chain


def file_checksum(path: str | Path) -> str:
    """sha256 of a revision file; line endings are normalised so a git checkout on Windows matches."""
    return hashlib.sha256(Path(path).read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def _index(chain: list[Script], revision: str | None) -> int:
    """Position of `revision` in the chain; -1 for base (nothing applied)."""
    if revision is None:
        return -1
    for i, script in enumerate(chain):
        if script.revision == revision:
            return i
    raise MigrationStateError(
        f"the database is at revision {revision}, which these revision files do not contain "
        f"(a newer release migrated it, or the files are incomplete)"
    )


def _resolve(chain: list[Script], target: str) -> int:
    if target in ("head", "heads"):
        return len(chain) - 1
    if target == "base":
        return -1
    matches = [i for i, s in enumerate(chain) if s.revision == target]
    if not matches:
        raise UnknownRevision(target, [s.revision for s in chain])
    return matches[0]


def _current_revision(conn: sa.Connection) -> str | None:
    if not table_exists(conn, VERSION_TABLE):
        return None
    heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise MigrationStateError(f"alembic_version holds several revisions ({', '.join(heads)})")
    return heads[0] if heads else None


def _ledger_latest(conn: sa.Connection) -> dict[str, sa.Row]:
    """Per revision, the successful upgrade that applied it most recently."""
    if not table_exists(conn, LEDGER):
        return {}
    rows = conn.execute(sa.text(
        f"SELECT DISTINCT ON (revision) revision, checksum, applied_at, duration_ms, applied_by "
        f"FROM {LEDGER} WHERE success AND direction = 'upgrade' ORDER BY revision, applied_at DESC, id DESC"
    ))
    return {row.revision: row for row in rows}


def _validate_applied(conn: sa.Connection, chain: list[Script], current: str | None) -> None:
    latest = _ledger_latest(conn)
    for script in chain[: _index(chain, current) + 1]:
        recorded = latest.get(script.revision)
        if recorded is None:
            raise MigrationStateError(
                f"revision {script.revision} is applied but has no row in {LEDGER}: it was applied outside "
                f"the migrator, so its file cannot be verified"
            )
        checksum = file_checksum(script.path)
        if recorded.checksum != checksum:
            raise MigrationChecksumMismatch(script.revision, recorded.checksum, checksum, script.path)


def _begin_revision_transaction(conn: sa.Connection) -> None:
    conn.execute(sa.text(f"SET LOCAL client_connection_check_interval = '{CLIENT_CHECK_INTERVAL}'"))
    roles.act_as_owner(conn)


def _ensure_ledger(conn: sa.Connection) -> None:
    with conn.begin():
        if not table_exists(conn, LEDGER):
            _begin_revision_transaction(conn)
            models.migration_history.create(conn, checkfirst=True)


def _applied_by(conn: sa.Connection) -> str:
    user = conn.execute(sa.text("SELECT session_user")).scalar_one()
    return f"{user}@{socket.gethostname()}"


def _record(conn: sa.Connection, revision: str, direction: str, checksum: str, duration_ms: int,
            applied_by: str, success: bool, error: str | None = None) -> None:
    conn.execute(models.migration_history.insert().values(
        revision=revision, direction=direction, checksum=checksum, duration_ms=duration_ms,
        applied_by=applied_by, success=success, error=error,
    ))


def _run_revision(conn: sa.Connection, script_location, script: Script, direction: str,
                  applied_by: str) -> AppliedRevision:
    checksum = file_checksum(script.path)
    started = time.monotonic()
    try:
        with conn.begin():
            _begin_revision_transaction(conn)
            config = _config(script_location, conn)
            if direction == "upgrade":
                command.upgrade(config, script.revision)
            else:
                command.downgrade(config, script.down_revision or "base")
            duration_ms = int((time.monotonic() - started) * 1000)
            # in the revision's own transaction: applied and recorded, or neither
            _record(conn, script.revision, direction, checksum, duration_ms, applied_by, True)
    except Exception as exc:
        duration_ms = int((time.monotonic() - started) * 1000)
        error = describe_error(exc)
        try:  # the attempt is recorded too, in a transaction of its own after the rollback
            with conn.begin():
                _begin_revision_transaction(conn)
                _record(conn, script.revision, direction, checksum, duration_ms, applied_by, False, error)
        except Exception as record_exc:  # noqa: BLE001 - the connection may be gone; the original error matters
            log.warning("could not record the failed %s of %s: %s", direction, script.revision,
                        describe_error(record_exc))
        raise MigrationFailed(script.revision, direction, error) from exc
    log.info("%s %s in %d ms", direction, script.revision, duration_ms)
    return AppliedRevision(script.revision, script.doc or "", direction, checksum, duration_ms)


@contextmanager
def migration_lock(engine: sa.Engine, timeout_s: float = 600.0) -> Iterator[int]:
    """Hold the migration advisory lock on a dedicated connection; yields the milliseconds waited.
    If the process dies, the server closes that session and the lock is released with it."""
    started = time.monotonic()
    with engine.connect() as lock_conn:
        lock_conn = lock_conn.execution_options(isolation_level="AUTOCOMMIT")
        delay = 0.05
        while not lock_conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}).scalar_one():
            if time.monotonic() - started > timeout_s:
                raise MigrationLockTimeout(
                    f"another migration has held the lock for more than {timeout_s:.0f} s; see pg_locks "
                    f"(locktype 'advisory') for the session holding it"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        waited_ms = int((time.monotonic() - started) * 1000)
        try:
            yield waited_ms
        finally:
            with suppress(Exception):
                lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})


def _security_expected(chain: list[Script], revision: str | None) -> bool:
    ids = [s.revision for s in chain]
    return SECURITY_REVISION in ids and _index(chain, revision) >= ids.index(SECURITY_REVISION)


def _finish(conn: sa.Connection, chain: list[Script], report: MigrationReport, check: bool) -> MigrationReport:
    report.end_revision = _current_revision(conn)
    conn.rollback()  # end the autobegun read transaction
    if check and _security_expected(chain, report.end_revision):
        report.security = security.inspect_security(conn)
        conn.rollback()
        if not report.security.ok:
            raise SecurityCheckFailed(report.security, report)
    return report


# -- public API -----------------------------------------------------------------------------------
def _prepare(conn: sa.Connection, chain: list[Script]) -> tuple[str | None, str]:
    """Under the lock, before any revision: the ledger exists, the applied revisions are unedited.
    Returns the current revision and who is applying."""
    _ensure_ledger(conn)
    current = _current_revision(conn)
    _validate_applied(conn, chain, current)
    applied_by = _applied_by(conn)
    conn.rollback()
    return current, applied_by


def upgrade(bind: sa.Engine | str, target: str = "head", *, script_location: str | Path | None = None,
            lock_timeout_s: float = 600.0, check: bool = True,
            before_each: Callable[[str], object] | None = None) -> MigrationReport:
    """Apply the pending revisions up to `target` ('head' or a revision id), each in its own
    transaction, under the advisory lock. `before_each(revision)` runs before each one is applied
    (e.g. a restore point). Raises UnknownRevision, MigrationChecksumMismatch,
    MigrationStateError, MigrationLockTimeout, MigrationFailed or SecurityCheckFailed."""
    chain = _chain(script_location)
    target_index = _resolve(chain, target)
    head = chain[-1].revision if chain else ""
    with client.engine_for(bind) as engine, migration_lock(engine, lock_timeout_s) as waited, engine.connect() as conn:
        current, applied_by = _prepare(conn, chain)
        current_index = _index(chain, current)
        if target_index < current_index:
            raise MigrationStateError(
                f"the database is at {current}, past the target {target}; use rollback to go back"
            )
        report = MigrationReport("upgrade", current, current, head, lock_wait_ms=waited)
        for script in chain[current_index + 1: target_index + 1]:
            if before_each is not None:
                before_each(script.revision)
            report.applied.append(_run_revision(conn, script_location, script, "upgrade", applied_by))
        return _finish(conn, chain, report, check)


def rollback(bind: sa.Engine | str, revision: str, *, script_location: str | Path | None = None,
             lock_timeout_s: float = 600.0, check: bool = True) -> MigrationReport:
    """Downgrade, one revision per transaction, until `revision` (a revision id, or 'base') is the
    latest applied. An unknown revision, or one not behind the current one, is refused."""
    chain = _chain(script_location)
    if revision in ("head", "heads"):
        raise UnknownRevision(revision, [s.revision for s in chain])
    target_index = _resolve(chain, revision)
    head = chain[-1].revision if chain else ""
    with client.engine_for(bind) as engine, migration_lock(engine, lock_timeout_s) as waited, engine.connect() as conn:
        current, applied_by = _prepare(conn, chain)
        current_index = _index(chain, current)
        if target_index > current_index:
            raise MigrationStateError(
                f"revision {revision} is not applied (the database is at {current or 'base'}); "
                f"use upgrade to go forward"
            )
        report = MigrationReport("downgrade", current, current, head, lock_wait_ms=waited)
        for script in reversed(chain[target_index + 1: current_index + 1]):
            report.applied.append(_run_revision(conn, script_location, script, "downgrade", applied_by))
        return _finish(conn, chain, report, check)


def status(bind: Bind, *, script_location: str | Path | None = None, history: int = 20) -> MigrationStatus:
    """Applied and pending revisions with their checksums and times, and the recent attempts.
    Read-only; takes no lock."""
    chain = _chain(script_location)
    with client.connection_for(bind) as conn:
        current = _current_revision(conn)
        current_index = _index(chain, current)
        latest = _ledger_latest(conn)
        entries: list[LedgerEntry] = []
        if table_exists(conn, LEDGER):
            entries = [LedgerEntry(r.revision, r.direction, r.checksum, r.applied_at, r.duration_ms, r.applied_by,
                                   r.success, r.error)
                       for r in conn.execute(sa.text(
                           f"SELECT revision, direction, checksum, applied_at, duration_ms, applied_by, success, "
                           f"error FROM {LEDGER} ORDER BY applied_at DESC, id DESC LIMIT :n"), {"n": history})]
        conn.rollback()
    revisions = []
    for i, script in enumerate(chain):
        checksum = file_checksum(script.path)
        if i > current_index:
            revisions.append(RevisionStatus(script.revision, script.doc or "", "pending", checksum))
            continue
        row = latest.get(script.revision)
        if row is None:
            revisions.append(RevisionStatus(script.revision, script.doc or "", "unrecorded", checksum))
            continue
        state = "applied" if row.checksum == checksum else "edited"
        revisions.append(RevisionStatus(script.revision, script.doc or "", state, checksum, row.checksum,
                                        row.applied_at, row.duration_ms, row.applied_by))
    return MigrationStatus(current, chain[-1].revision if chain else "", revisions, entries)


def drop_everything(bind: sa.Engine | str, *, lock_timeout_s: float = 600.0) -> list[str]:
    """Drop the application's tables, its functions, the ledger and alembic_version, and revoke the
    schema privileges 0002 granted — the database is then as before the first migration. The roles
    stay: they are cluster-wide and may serve other databases. Returns what was dropped."""
    dropped: list[str] = []
    tables = [t.name for t in reversed(models.metadata.sorted_tables)] + [VERSION_TABLE]
    with client.engine_for(bind) as engine, migration_lock(engine, lock_timeout_s), engine.begin() as conn:
        for table in tables:
            if table_exists(conn, table):
                conn.execute(sa.text(f'DROP TABLE "{table}" CASCADE'))
                dropped.append(table)
        functions = conn.execute(sa.text(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = :schema AND (p.proname = ANY(:names) "
            "   OR p.proowner = (SELECT oid FROM pg_roles WHERE rolname = :owner))"
        ), {"schema": roles.SCHEMA, "names": list(security.KNOWN_FUNCTIONS), "owner": roles.OWNER_ROLE}).scalars().all()
        for function in functions:
            conn.execute(sa.text(f"DROP FUNCTION IF EXISTS {function} CASCADE"))
            dropped.append(function)
        existing = conn.execute(sa.text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:names)"),
                                {"names": list(roles.ROLES)}).scalars().all()
        if existing:
            conn.execute(sa.text(f"REVOKE ALL ON SCHEMA {roles.SCHEMA} FROM {', '.join(existing)}"))
    return dropped


def create_revision(message: str, *, script_location: str | Path | None = None) -> Path:
    """Write a new, empty revision file numbered after the current head (0003, 0004, ...)."""
    chain = _chain(script_location)
    number = max((int(s.revision) for s in chain if s.revision.isdigit()), default=0) + 1
    script = command.revision(_config(script_location), message=message, rev_id=f"{number:04d}")
    return Path(script.path)
