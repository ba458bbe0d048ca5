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
call `upgrade`, `status`, `rollback`, `check_drift` and `check_security` here.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import exc as sa_exc

from orchestrator_data.postgres import client, models
from orchestrator_data.redaction import redact

log = logging.getLogger(__name__)

DEFAULT_SCRIPT_LOCATION = Path(__file__).resolve().with_name("migrations")
# One fixed key for the whole product ('orchmigr'); advisory locks are per database, so migrations
# of different databases in one cluster never wait for each other.
LOCK_KEY = 0x6F7263686D696772
SCHEMA = "public"
OWNER_ROLE = "orchestrator_owner"
APP_ROLE = "orchestrator_app"
READONLY_ROLE = "orchestrator_readonly"
SECURITY_REVISION = "0002"  # from this revision on, the security check must pass
LEDGER = models.migration_history.name
VERSION_TABLE = "alembic_version"
ERROR_LIMIT = 2000
# A killed migrator must not leave its transaction (and locks) open until a long statement ends.
CLIENT_CHECK_INTERVAL = "1s"

RLS_TABLES = ("organizations", *models.TENANT_TABLES, "audit_logs")
AUDIT_FUNCTION = "audit_row_change"
APPEND_ONLY_FUNCTION = "audit_logs_append_only"
IMMUTABLE_FUNCTION = "workflow_versions_immutable"
SEARCH_FUNCTIONS = ("search_workflows", "search_marketplace_items")
DELETE_FUNCTION = "tenant_delete"  # revision 0005: the app role's only way to hard-delete
# SECURITY DEFINER functions the app role calls: they bypass the policies by design
DEFINER_FUNCTIONS = (*SEARCH_FUNCTIONS, DELETE_FUNCTION)
KNOWN_FUNCTIONS = (AUDIT_FUNCTION, APPEND_ONLY_FUNCTION, IMMUTABLE_FUNCTION, *DEFINER_FUNCTIONS)
# policies every RLS table must carry, and those a given table may carry besides
REQUIRED_POLICIES = {"owner_all": ("ALL", OWNER_ROLE), "readonly_all": ("SELECT", READONLY_ROLE)}
TENANT_POLICY = {"audit_logs": ("tenant_read", "SELECT")}  # default: ("tenant_isolation", "ALL")
EXTRA_POLICIES = {"marketplace_items": {"published_read": ("SELECT", APP_ROLE)}}


# -- errors ---------------------------------------------------------------------------------------
class MigrationError(Exception):
    """Base of every refusal or failure of the migrator; the message is safe to print."""


class UnknownRevision(MigrationError):
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


@dataclass
class TableSecurity:
    table: str
    rls_enabled: bool = False
    rls_forced: bool = False
    owner: str | None = None
    policies: list[str] = field(default_factory=list)
    audit_trigger: bool | None = None  # None: not an audited table
    problems: list[str] = field(default_factory=list)


@dataclass
class SecurityReport:
    tables: list[TableSecurity]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}


@dataclass(frozen=True)
class TableStats:
    table: str
    rows: int
    rows_exact: bool
    total_bytes: int
    table_bytes: int
    index_bytes: int


# -- plumbing -------------------------------------------------------------------------------------
Bind = sa.Engine | sa.Connection | str


@contextmanager
def _engine(bind: sa.Engine | str) -> Iterator[sa.Engine]:
    if isinstance(bind, sa.Engine):
        yield bind
        return
    engine = client.create_engine(str(bind), pool=client.PoolOptions(size=2, max_overflow=2),
                                  application_name="orchestrator-data-migrate")
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _connection(bind: Bind) -> Iterator[sa.Connection]:
    """A connection for read-only checks; a given Connection is used as it is."""
    if isinstance(bind, sa.Connection):
        yield bind
        return
    with _engine(bind) as engine, engine.connect() as conn:
        yield conn


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


def _table_exists(conn: sa.Connection, table: str) -> bool:
    return conn.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"),
                        {"name": f"{SCHEMA}.{table}"}).scalar_one()


def _current_revision(conn: sa.Connection) -> str | None:
    if not _table_exists(conn, VERSION_TABLE):
        return None
    heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise MigrationStateError(f"alembic_version holds several revisions ({', '.join(heads)})")
    return heads[0] if heads else None


def _ledger_latest(conn: sa.Connection) -> dict[str, sa.Row]:
    """Per revision, the successful upgrade that applied it most recently."""
    if not _table_exists(conn, LEDGER):
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


def _owner_usable(conn: sa.Connection) -> bool:
    """Whether revisions can run as the owner role: it exists, may create in the schema (revision
    0002 granted that) and the login may SET ROLE to it. Before that, they run as the login."""
    return bool(conn.execute(sa.text(
        "SELECT coalesce((SELECT has_schema_privilege(r.oid, :schema, 'CREATE') "
        "                        AND pg_has_role(session_user, r.oid, 'SET') "
        "                 FROM pg_roles r WHERE r.rolname = :owner), false)"
    ), {"schema": SCHEMA, "owner": OWNER_ROLE}).scalar_one())


def act_as_owner(conn: sa.Connection) -> bool:
    """In the open transaction, SET LOCAL ROLE to the owner role when the login may (see
    _owner_usable); returns whether it did. Migrations and alert audit rows both write as the owner."""
    if not _owner_usable(conn):
        return False
    conn.execute(sa.text(f"SET LOCAL ROLE {OWNER_ROLE}"))
    return True


def _begin_revision_transaction(conn: sa.Connection) -> None:
    conn.execute(sa.text(f"SET LOCAL client_connection_check_interval = '{CLIENT_CHECK_INTERVAL}'"))
    act_as_owner(conn)


def _ensure_ledger(conn: sa.Connection) -> None:
    with conn.begin():
        if not _table_exists(conn, LEDGER):
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


def describe_error(exc: BaseException) -> str:
    """A one-paragraph, redacted description of a failure (the driver's message, not SQLAlchemy's
    wrapper with the statement and its parameters)."""
    original = getattr(exc, "orig", None) if isinstance(exc, sa_exc.DBAPIError) else None
    source = original or exc
    text = f"{type(source).__name__}: {source}".strip()
    return redact(text)[:ERROR_LIMIT]


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
        report.security = _check_security(conn)
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
            lock_timeout_s: float = 600.0, check: bool = True) -> MigrationReport:
    """Apply the pending revisions up to `target` ('head' or a revision id), each in its own
    transaction, under the advisory lock. Raises UnknownRevision, MigrationChecksumMismatch,
    MigrationStateError, MigrationLockTimeout, MigrationFailed or SecurityCheckFailed."""
    chain = _chain(script_location)
    target_index = _resolve(chain, target)
    head = chain[-1].revision if chain else ""
    with _engine(bind) as engine, migration_lock(engine, lock_timeout_s) as waited, engine.connect() as conn:
        current, applied_by = _prepare(conn, chain)
        current_index = _index(chain, current)
        if target_index < current_index:
            raise MigrationStateError(
                f"the database is at {current}, past the target {target}; use rollback to go back"
            )
        report = MigrationReport("upgrade", current, current, head, lock_wait_ms=waited)
        for script in chain[current_index + 1: target_index + 1]:
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
    with _engine(bind) as engine, migration_lock(engine, lock_timeout_s) as waited, engine.connect() as conn:
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
    with _connection(bind) as conn:
        current = _current_revision(conn)
        current_index = _index(chain, current)
        latest = _ledger_latest(conn)
        entries: list[LedgerEntry] = []
        if _table_exists(conn, LEDGER):
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


def _include_name(name, type_, parent_names) -> bool:
    return not (type_ == "table" and name == VERSION_TABLE)


def _render_diff(diff) -> str:
    if isinstance(diff, list):  # modify_* come as a list of tuples for one column
        return "; ".join(_render_diff(d) for d in diff)
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        where = "models, not in the database" if kind == "add_table" else "database, not in the models"
        return f"{kind}: table {diff[1].name} is in the {where}"
    if kind in ("add_column", "remove_column"):
        where = "models, not in the database" if kind == "add_column" else "database, not in the models"
        return f"{kind}: column {diff[2]}.{diff[3].name} is in the {where}"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        item = diff[1]
        where = "models, not in the database" if kind.startswith("add") else "database, not in the models"
        table = getattr(getattr(item, "table", None), "name", "?")
        return f"{kind}: {type(item).__name__} {item.name} on {table} is in the {where}"
    if kind.startswith("modify_"):
        # ('modify_type', schema, table, column, {existing...}, old, new)
        return f"{kind}: {diff[2]}.{diff[3]} is {diff[5]!r} in the database, {diff[6]!r} in the models"
    return redact(repr(diff))


def check_drift(bind: Bind) -> list[str]:
    """Differences between the live schema and models.metadata, as `alembic check` finds them
    (tables, columns, types, nullability, server defaults, indexes, unique and foreign keys).
    alembic_version is ignored; the ledger is compared like any table. Empty means no drift."""
    with _connection(bind) as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "compare_server_default": True, "include_name": _include_name,
            "target_metadata": models.metadata,
        })
        diffs = compare_metadata(context, models.metadata)
        conn.rollback()
    return [_render_diff(d) for d in diffs]


def check_security(bind: Bind) -> SecurityReport:
    """Whether every tenant table (and organizations, audit_logs) has row-level security enabled
    and forced with exactly the expected policies, every audited table its audit trigger, the audit
    log its append-only guard, workflow_versions its immutability trigger, and whether the roles are
    as the model says (the app role bypasses nothing and owns nothing)."""
    with _connection(bind) as conn:
        report = _check_security(conn)
        conn.rollback()
    return report


_TG_ROW, _TG_BEFORE, _TG_INSERT, _TG_DELETE, _TG_UPDATE, _TG_TRUNCATE = 1, 2, 4, 8, 16, 32


def _check_security(conn: sa.Connection) -> SecurityReport:
    problems: list[str] = []
    roles = {r.rolname: r for r in conn.execute(sa.text(
        "SELECT rolname, rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = ANY(:names)"
    ), {"names": [OWNER_ROLE, APP_ROLE, READONLY_ROLE]})}
    for name in (OWNER_ROLE, APP_ROLE, READONLY_ROLE):
        if name not in roles:
            problems.append(f"role {name} does not exist")
    for name in (APP_ROLE, READONLY_ROLE):
        role = roles.get(name)
        if role is not None and (role.rolsuper or role.rolbypassrls):
            problems.append(f"role {name} bypasses row-level security (SUPERUSER or BYPASSRLS)")

    classes = {r.relname: r for r in conn.execute(sa.text(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) AS owner "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')"
    ), {"schema": SCHEMA})}
    policies: dict[str, list] = {}
    for p in conn.execute(sa.text(
        "SELECT tablename, policyname, permissive, roles::text[] AS roles, cmd, qual, with_check "
        "FROM pg_policies WHERE schemaname = :schema"
    ), {"schema": SCHEMA}):
        policies.setdefault(p.tablename, []).append(p)
    triggers: dict[str, list] = {}
    for t in conn.execute(sa.text(
        "SELECT c.relname AS table, t.tgname, t.tgenabled, t.tgtype, p.proname, p.prosecdef, "
        "pg_get_userbyid(p.proowner) AS function_owner, p.proconfig "
        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_proc p ON p.oid = t.tgfoid WHERE n.nspname = :schema AND NOT t.tgisinternal"
    ), {"schema": SCHEMA}):
        triggers.setdefault(t.table, []).append(t)

    def has_trigger(table: str, function: str, events: int, before: bool, row: bool) -> bool:
        for t in triggers.get(table, []):
            if (t.proname == function and t.tgenabled != "D" and (t.tgtype & events) == events
                    and bool(t.tgtype & _TG_BEFORE) == before and bool(t.tgtype & _TG_ROW) == row):
                return True
        return False

    tables: list[TableSecurity] = []
    for table in RLS_TABLES:
        entry = TableSecurity(table)
        tables.append(entry)
        cls = classes.get(table)
        if cls is None:
            entry.problems.append("table does not exist")
            continue
        entry.rls_enabled, entry.rls_forced, entry.owner = cls.relrowsecurity, cls.relforcerowsecurity, cls.owner
        if not cls.relrowsecurity:
            entry.problems.append("row-level security is not enabled")
        if not cls.relforcerowsecurity:
            entry.problems.append("row-level security is not forced")
        if cls.owner != OWNER_ROLE:
            entry.problems.append(f"owned by {cls.owner}, not {OWNER_ROLE}")
        found = {p.policyname: p for p in policies.get(table, [])}
        entry.policies = sorted(found)
        tenant_name, tenant_cmd = TENANT_POLICY.get(table, ("tenant_isolation", "ALL"))
        expected = dict(REQUIRED_POLICIES) | {tenant_name: (tenant_cmd, APP_ROLE)} | EXTRA_POLICIES.get(table, {})
        for name, (cmd, role) in expected.items():
            policy = found.get(name)
            if policy is None:
                if name in REQUIRED_POLICIES or name == tenant_name:
                    entry.problems.append(f"policy {name} is missing")
                continue
            if policy.cmd != cmd or list(policy.roles) != [role] or policy.permissive != "PERMISSIVE":
                entry.problems.append(f"policy {name} is not PERMISSIVE FOR {cmd} TO {role}")
        tenant = found.get(tenant_name)
        if tenant is not None:
            if "app.organization_id" not in (tenant.qual or ""):
                entry.problems.append(f"policy {tenant_name} does not key on app.organization_id")
            if tenant_cmd == "ALL" and "app.organization_id" not in (tenant.with_check or ""):
                entry.problems.append(f"policy {tenant_name} has no WITH CHECK on app.organization_id")
        for name in sorted(set(found) - set(expected)):
            entry.problems.append(f"unexpected policy {name} ({found[name].cmd} TO {', '.join(found[name].roles)})")
        if table in models.AUDITED_TABLES:
            entry.audit_trigger = has_trigger(table, AUDIT_FUNCTION, _TG_INSERT | _TG_UPDATE | _TG_DELETE,
                                              before=False, row=True)
            if not entry.audit_trigger:
                entry.problems.append(f"no enabled AFTER INSERT OR UPDATE OR DELETE row trigger calling {AUDIT_FUNCTION}")
    missing_audited = set(models.AUDITED_TABLES) - set(RLS_TABLES)
    for table in sorted(missing_audited):  # an audited table outside the RLS set still needs its trigger
        if not has_trigger(table, AUDIT_FUNCTION, _TG_INSERT | _TG_UPDATE | _TG_DELETE, before=False, row=True):
            problems.append(f"{table}: no audit trigger")

    if "audit_logs" in classes:
        if not has_trigger("audit_logs", APPEND_ONLY_FUNCTION, _TG_UPDATE | _TG_DELETE, before=True, row=True):
            problems.append("audit_logs: no enabled append-only trigger refusing UPDATE and DELETE")
        if not has_trigger("audit_logs", APPEND_ONLY_FUNCTION, _TG_TRUNCATE, before=True, row=False):
            problems.append("audit_logs: no enabled trigger refusing TRUNCATE")
    if "workflow_versions" in classes and not has_trigger("workflow_versions", IMMUTABLE_FUNCTION, _TG_UPDATE,
                                                          before=True, row=True):
        problems.append("workflow_versions: no enabled trigger keeping versions immutable")
    audit_fn = next((t for ts in triggers.values() for t in ts if t.proname == AUDIT_FUNCTION), None)
    if audit_fn is not None:
        if not audit_fn.prosecdef or audit_fn.function_owner != OWNER_ROLE:
            problems.append(f"{AUDIT_FUNCTION} must be SECURITY DEFINER owned by {OWNER_ROLE}")
        if not any((c or "").startswith("search_path=") for c in (audit_fn.proconfig or [])):
            problems.append(f"{AUDIT_FUNCTION} does not pin its search_path")

    definers = {r.proname: r for r in conn.execute(sa.text(
        "SELECT p.proname, p.prosecdef, pg_get_userbyid(p.proowner) AS owner, p.proconfig "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = :schema AND p.proname = ANY(:names)"
    ), {"schema": SCHEMA, "names": list(DEFINER_FUNCTIONS)})}
    for name in DEFINER_FUNCTIONS:  # they bypass the policies by design, so they must be exactly ours
        fn = definers.get(name)
        if fn is None:
            problems.append(f"function {name} is missing")
        elif not fn.prosecdef or fn.owner != OWNER_ROLE or not any(
                (c or "").startswith("search_path=") for c in (fn.proconfig or [])):
            problems.append(f"function {name} must be SECURITY DEFINER, owned by {OWNER_ROLE}, with a fixed search_path")

    if APP_ROLE in roles:
        owned = conn.execute(sa.text(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = :role)"
        ), {"schema": SCHEMA, "role": APP_ROLE}).scalar_one()
        if owned:
            problems.append(f"role {APP_ROLE} owns {owned} relation(s); it must own nothing")
        # Any one of these at table level lets a role LOCK the table in every mode (LockTableAclCheck;
        # MAINTAIN exists from PostgreSQL 17), stalling every tenant; TRUNCATE also ignores row-level
        # security. The app updates through column grants and deletes through tenant_delete().
        lock_any = ("UPDATE", "DELETE", "TRUNCATE", *(("MAINTAIN",) if conn.dialect.server_version_info >= (17,) else ()))
        for table in RLS_TABLES:
            if table not in classes:
                continue
            for privilege in ("INSERT", *lock_any) if table == "audit_logs" else lock_any:
                if conn.execute(sa.text("SELECT has_table_privilege(:role, :table, :privilege)"),
                                {"role": APP_ROLE, "table": f"{SCHEMA}.{table}", "privilege": privilege}).scalar_one():
                    problems.append(f"role {APP_ROLE} has {privilege} on {table}"
                                    + (" (table-level: it can LOCK the table in any mode)" if privilege in lock_any else ""))
    if READONLY_ROLE in roles:
        for table in RLS_TABLES:
            if table in classes and conn.execute(sa.text(
                "SELECT has_table_privilege(:role, :table, 'INSERT, UPDATE, DELETE, TRUNCATE')"
            ), {"role": READONLY_ROLE, "table": f"{SCHEMA}.{table}"}).scalar_one():
                problems.append(f"role {READONLY_ROLE} can write {table}")

    problems = [f"{t.table}: {p}" for t in tables for p in t.problems] + problems
    return SecurityReport(tables, problems)


def table_stats(bind: Bind, exact_below: int = 100_000) -> list[TableStats]:
    """Rows and sizes of each model table: an exact count when the planner's estimate is under
    `exact_below` (or the table was never analyzed), pg_class.reltuples above that."""
    names = [t.name for t in models.metadata.sorted_tables]
    with _connection(bind) as conn:
        rows = conn.execute(sa.text(
            "SELECT c.relname, c.reltuples::bigint AS estimate, pg_total_relation_size(c.oid) AS total, "
            "pg_table_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind = 'r' AND c.relname = ANY(:names)"
        ), {"schema": SCHEMA, "names": names}).all()
        found = {r.relname: r for r in rows}
        stats = []
        for name in names:
            r = found.get(name)
            if r is None:
                continue
            exact = r.estimate < 0 or r.estimate < exact_below
            count = (conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one() if exact
                     else int(r.estimate))
            stats.append(TableStats(name, count, exact, r.total, r.heap, r.indexes))
        conn.rollback()
    return stats


def drop_everything(bind: sa.Engine | str, *, lock_timeout_s: float = 600.0) -> list[str]:
    """Drop the application's tables, its functions, the ledger and alembic_version, and revoke the
    schema privileges 0002 granted — the database is then as before the first migration. The roles
    stay: they are cluster-wide and may serve other databases. Returns what was dropped."""
    dropped: list[str] = []
    tables = [t.name for t in reversed(models.metadata.sorted_tables)] + [VERSION_TABLE]
    with _engine(bind) as engine, migration_lock(engine, lock_timeout_s), engine.begin() as conn:
        for table in tables:
            if _table_exists(conn, table):
                conn.execute(sa.text(f'DROP TABLE "{table}" CASCADE'))
                dropped.append(table)
        functions = conn.execute(sa.text(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = :schema AND (p.proname = ANY(:names) "
            "   OR p.proowner = (SELECT oid FROM pg_roles WHERE rolname = :owner))"
        ), {"schema": SCHEMA, "names": list(KNOWN_FUNCTIONS), "owner": OWNER_ROLE}).scalars().all()
        for function in functions:
            conn.execute(sa.text(f"DROP FUNCTION IF EXISTS {function} CASCADE"))
            dropped.append(function)
        existing = conn.execute(sa.text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:names)"),
                                {"names": [OWNER_ROLE, APP_ROLE, READONLY_ROLE]}).scalars().all()
        if existing:
            conn.execute(sa.text(f"REVOKE ALL ON SCHEMA {SCHEMA} FROM {', '.join(existing)}"))
    return dropped


def create_revision(message: str, *, script_location: str | Path | None = None) -> Path:
    """Write a new, empty revision file numbered after the current head (0003, 0004, ...)."""
    chain = _chain(script_location)
    number = max((int(s.revision) for s in chain if s.revision.isdigit()), default=0) + 1
    script = command.revision(_config(script_location), message=message, rev_id=f"{number:04d}")
    return Path(script.path)
