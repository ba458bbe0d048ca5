"""The migrator on the real server: ledger, lock, checksums, transactions, rollback, drift, security."""

from __future__ import annotations

import multiprocessing
import os
import secrets
import shutil
import signal
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from orchestrator_data import urls
from orchestrator_data.postgres import catalog, migrator, security
from tests.orchestrator_data.postgres import workers
from tests.databases import admin_url, fresh_database

pytestmark = pytest.mark.integration

HEAD = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011", "0012"]
PROBE = f"{int(HEAD[-1]) + 1:04d}"  # test-only revisions go after the real head


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(urls.libpq_url(url), autocommit=True)


def _ledger(url: str) -> list[tuple]:
    with _connect(url) as conn:
        return conn.execute("SELECT revision, direction, success FROM _migration_history ORDER BY id").fetchall()


def _scalar(url: str, query: str, *params):
    with _connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


def _copy_migrations(tmp_path: Path, **extra: str) -> Path:
    """The package's revisions in a scratch directory, plus test-only revisions {filename: source}."""
    target = tmp_path / "migrations"
    shutil.copytree(migrator.DEFAULT_SCRIPT_LOCATION, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name, source in extra.items():
        (target / "versions" / name).write_text(source)
    return target


def _probe(body: str, downgrade: str = "    pass\n") -> str:
    return (
        f'"""test probe\n\nRevision ID: {PROBE}\nRevises: {HEAD[-1]}\n"""\n'
        "import os\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "{PROBE}"\ndown_revision = "{HEAD[-1]}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        f"def upgrade():\n{body}\n\ndef downgrade():\n{downgrade}"
    )


SLEEPING_PROBE = _probe(
    '    op.create_table("killed_probe", sa.Column("id", sa.Integer, primary_key=True))\n'
    '    op.execute("ALTER TABLE workflows ADD COLUMN killed_probe integer")\n'
    '    if os.environ.get("OD_TEST_SLEEP"):\n'
    '        op.execute(f"SELECT pg_sleep({float(os.environ[\'OD_TEST_SLEEP\'])})")\n',
    '    op.execute("ALTER TABLE workflows DROP COLUMN killed_probe")\n    op.drop_table("killed_probe")\n',
)
FAILING_PROBE = _probe(
    '    op.create_table("failed_probe", sa.Column("id", sa.Integer, primary_key=True))\n'
    "    op.execute(\"DO $$ BEGIN RAISE EXCEPTION 'replica unreachable: password=Sup3rSecretValue'; END $$\")\n"
)
SLOW_PROBE = _probe('    op.execute("SELECT pg_sleep(1)")\n')


def test_a_fresh_database_is_migrated_to_head_and_every_revision_recorded(database):
    report = migrator.upgrade(database)
    assert report.applied_revisions == HEAD
    assert (report.start_revision, report.end_revision, report.head) == (None, HEAD[-1], HEAD[-1])
    assert report.security is not None and report.security.ok
    assert all(a.duration_ms >= 0 and len(a.checksum) == 64 for a in report.applied)
    with _connect(database) as conn:
        rows = conn.execute("SELECT revision, direction, checksum, duration_ms, applied_by, success, error, applied_at "
                            "FROM _migration_history ORDER BY id").fetchall()
    files = {s.revision: migrator.file_checksum(s.path) for s in migrator._chain(None)}
    assert [(r[0], r[1], r[5], r[6]) for r in rows] == [(r, "upgrade", True, None) for r in HEAD]
    assert [r[2] for r in rows] == [files[r] for r in HEAD]
    assert all(r[4].startswith("postgres@") and r[7] is not None for r in rows)

    state = migrator.status(database)
    assert state.current == HEAD[-1] and state.pending == []
    assert [(r.revision, r.state, r.applied_checksum == r.file_checksum) for r in state.revisions] == [
        (r, "applied", True) for r in HEAD]
    assert catalog.check_drift(database) == []

    again = migrator.upgrade(database)
    assert again.applied == [] and again.end_revision == HEAD[-1] and again.security.ok
    assert len(_ledger(database)) == len(HEAD)


def test_status_of_a_fresh_database_and_a_partial_upgrade(database):
    state = migrator.status(database)
    assert state.current is None and state.pending == HEAD and state.history == []
    report = migrator.upgrade(database, target="0001")
    assert report.applied_revisions == ["0001"] and report.security is None  # security arrives with 0002
    state = migrator.status(database)
    assert [(r.revision, r.state) for r in state.revisions] == [("0001", "applied")] + [(r, "pending") for r in HEAD[1:]]
    assert state.revisions[0].applied_at is not None and state.revisions[0].duration_ms is not None
    assert migrator.upgrade(database).applied_revisions == HEAD[1:]
    with pytest.raises(migrator.UnknownRevision, match="nope"):
        migrator.upgrade(database, target="nope")


def test_concurrent_migrations_apply_each_revision_once(database, tmp_path):
    """Four processes start together; the lock lets one apply, the others wait and find nothing to do."""
    location = str(_copy_migrations(tmp_path, **{f"{PROBE}_slow.py": SLOW_PROBE}))
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    processes = [context.Process(target=workers.upgrade_together, args=(database, location, barrier, results))
                 for _ in range(4)]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=30)
    assert [o[3] for o in outcomes] == [None] * 4
    applied = sorted(r for o in outcomes for r in o[1])
    assert applied == [*HEAD, PROBE]
    assert sum(1 for o in outcomes if o[1]) == 1  # one process applied everything
    assert sum(1 for o in outcomes if o[2] > 0) >= 3  # the others waited for it
    assert _ledger(database) == [(r, "upgrade", True) for r in [*HEAD, PROBE]]
    assert _scalar(database, "SELECT version_num FROM alembic_version") == PROBE


def test_an_edited_revision_is_refused_naming_it(database, tmp_path):
    location = _copy_migrations(tmp_path)
    migrator.upgrade(database, script_location=location)
    edited = location / "versions" / "0001_core_tables.py"
    edited.write_text(edited.read_text() + "\n# a later edit\n")
    with pytest.raises(migrator.MigrationChecksumMismatch) as refused:
        migrator.upgrade(database, script_location=location)
    assert refused.value.revision == "0001" and "revision 0001 was edited" in str(refused.value)
    with pytest.raises(migrator.MigrationChecksumMismatch):
        migrator.rollback(database, "0001", script_location=location)
    state = migrator.status(database, script_location=location)
    assert [(r.revision, r.state) for r in state.revisions] == [("0001", "edited")] + [(r, "applied") for r in HEAD[1:]]
    # line endings alone do not count as an edit
    crlf = location / "versions" / "0002_security.py"
    crlf.write_bytes(crlf.read_bytes().replace(b"\n", b"\r\n"))
    assert migrator.status(database, script_location=location).revisions[1].state == "applied"


def test_a_failing_revision_leaves_nothing_behind_and_is_recorded_redacted(database, tmp_path):
    location = _copy_migrations(tmp_path, **{f"{PROBE}_failing.py": FAILING_PROBE})
    with pytest.raises(migrator.MigrationFailed) as failed:
        migrator.upgrade(database, script_location=location)
    assert failed.value.revision == PROBE
    assert "Sup3rSecretValue" not in str(failed.value)
    assert _scalar(database, "SELECT to_regclass('public.failed_probe') IS NULL")
    assert _scalar(database, "SELECT version_num FROM alembic_version") == HEAD[-1]  # the real revisions stay applied
    assert _ledger(database)[-1] == (PROBE, "upgrade", False)
    error = _scalar(database, "SELECT error FROM _migration_history WHERE NOT success")
    assert "replica unreachable" in error and "Sup3rSecretValue" not in error and "password=***" in error
    state = migrator.status(database, script_location=location)
    assert state.pending == [PROBE] and not state.history[0].success


def test_a_migration_killed_midway_leaves_no_partial_schema_and_the_rerun_succeeds(database, tmp_path):
    location = str(_copy_migrations(tmp_path, **{f"{PROBE}_sleeping.py": SLEEPING_PROBE}))
    migrator.upgrade(database, target=HEAD[-1], script_location=location)
    process = multiprocessing.get_context("spawn").Process(target=workers.upgrade_slowly,
                                                           args=(database, location))
    process.start()
    name = urls.database_name(database)
    deadline = time.monotonic() + 60
    while not _scalar(database, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE %s",
                      name, "SELECT pg_sleep%"):
        assert time.monotonic() < deadline, "the probe revision never reached its sleep"
        assert process.is_alive()
        time.sleep(0.1)
    # mid-revision: the table and column exist inside its transaction, invisible to everyone else
    assert _scalar(database, "SELECT to_regclass('public.killed_probe') IS NULL")
    os.kill(process.pid, signal.SIGKILL)
    process.join(timeout=10)

    # the server notices the dead client (client_connection_check_interval) and rolls back
    deadline = time.monotonic() + 20
    while _scalar(database, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE %s "
                             "AND pid <> pg_backend_pid()", name, "SELECT pg_sleep%"):
        assert time.monotonic() < deadline, "the killed migration's transaction is still running"
        time.sleep(0.2)
    assert _scalar(database, "SELECT to_regclass('public.killed_probe') IS NULL")
    assert not _scalar(database, "SELECT count(*) FROM information_schema.columns "
                                  "WHERE table_name = 'workflows' AND column_name = 'killed_probe'")
    assert _scalar(database, "SELECT version_num FROM alembic_version") == HEAD[-1]
    assert _scalar(database, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0

    report = migrator.upgrade(database, script_location=location)
    assert report.applied_revisions == [PROBE] and report.lock_wait_ms < 1000
    assert _scalar(database, "SELECT to_regclass('public.killed_probe') IS NOT NULL")
    assert _scalar(database, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0


def test_rollback_and_upgrade_again_round_trip(database):
    migrator.upgrade(database)
    with _connect(database) as conn:  # data survives a rollback of the security revision
        conn.execute("INSERT INTO organizations (slug, name) VALUES ('kept', 'Kept')")

    report = migrator.rollback(database, "0001")
    assert [(a.revision, a.direction) for a in report.applied] == [(r, "downgrade") for r in reversed(HEAD[1:])]
    assert report.end_revision == "0001" and report.security is None
    with _connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM pg_policies WHERE schemaname = 'public'").fetchone()[0] == 0
        assert conn.execute("SELECT bool_or(relrowsecurity OR relforcerowsecurity) FROM pg_class "
                            "WHERE relname IN ('users', 'workflows', 'audit_logs')").fetchone()[0] is False
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                            "WHERE n.nspname = 'public'").fetchone()[0] == 0
        assert {r[0] for r in conn.execute("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN "
                                           "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")} \
            == {"postgres"}
        assert conn.execute("SELECT slug FROM organizations").fetchone()[0] == "kept"
    # the tables are 0001's: the keys 0004 made tenant-consistent and what 0006 adds for the search
    # sync (row_version columns, the transaction id index, search_sync_state) differ from the models
    assert {d.split(":")[0] for d in catalog.check_drift(database)} == {
        "add_fk", "remove_fk", "add_constraint", "remove_constraint", "add_column", "add_index", "add_table"}

    assert migrator.upgrade(database).applied_revisions == HEAD[1:]
    assert security.check_security(database).ok
    assert _scalar(database, "SELECT count(*) FROM organizations") == 1

    report = migrator.rollback(database, "base")
    assert [a.revision for a in report.applied] == HEAD[::-1]
    assert _scalar(database, "SELECT to_regclass('public.organizations') IS NULL")
    assert migrator.status(database).pending == HEAD
    assert migrator.upgrade(database).applied_revisions == HEAD
    up, down = [(r, "upgrade") for r in HEAD], [(r, "downgrade") for r in reversed(HEAD)]
    assert [(r[0], r[1]) for r in _ledger(database)] == up + down[:-1] + up[1:] + down + up
    assert all(r[2] for r in _ledger(database))


def test_rollback_refuses_unknown_and_unapplied_revisions(database):
    migrator.upgrade(database, target="0001")
    with pytest.raises(migrator.UnknownRevision, match="unknown revision 'nope'"):
        migrator.rollback(database, "nope")
    with pytest.raises(migrator.MigrationStateError, match="not applied"):
        migrator.rollback(database, "0002")
    assert migrator.rollback(database, "0001").applied == []  # already there: nothing to do
    assert len(_ledger(database)) == 1


def test_drift_check_finds_an_added_column_and_a_removed_index(migrated_url):
    with _connect(migrated_url) as conn:
        conn.execute("ALTER TABLE workflows ADD COLUMN rogue integer")
        conn.execute("DROP INDEX ix_workflows_organization_id_engine_type")
        conn.execute("DROP INDEX ix_executions_organization_id_status_created_at")
        conn.execute("ALTER TABLE executions ALTER COLUMN error SET NOT NULL")
    drift = catalog.check_drift(migrated_url)
    text = "\n".join(drift)
    assert "workflows.rogue is in the database, not in the models" in text
    assert "ix_workflows_organization_id_engine_type on workflows is in the models, not in the database" in text
    assert "ix_executions_organization_id_status_created_at" in text
    assert "modify_nullable: executions.error" in text
    assert len(drift) == 4


def test_security_check_catches_what_was_loosened(migrated_url):
    assert security.check_security(migrated_url).ok
    with _connect(migrated_url) as conn:
        conn.execute("ALTER TABLE users DISABLE ROW LEVEL SECURITY")
        conn.execute("ALTER TABLE executions NO FORCE ROW LEVEL SECURITY")
        conn.execute("DROP TRIGGER audit_row_change ON roles")
        conn.execute("CREATE POLICY everything ON workflows TO orchestrator_app USING (true)")
        conn.execute("DROP POLICY tenant_isolation ON marketplace_items")
        conn.execute("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only")
        conn.execute("GRANT TRUNCATE ON role_memberships TO orchestrator_app")
        # any of these at table level lets the app LOCK the table in every mode
        conn.execute("GRANT UPDATE ON workflows TO orchestrator_app")
        conn.execute("GRANT DELETE ON organizations TO orchestrator_app")
        conn.execute("GRANT MAINTAIN ON executions TO orchestrator_app")
        conn.execute("ALTER FUNCTION tenant_delete(text, jsonb) SECURITY INVOKER")
    report = security.check_security(migrated_url)
    problems = "\n".join(report.problems)
    assert not report.ok
    assert "users: row-level security is not enabled" in problems
    assert "executions: row-level security is not forced" in problems
    assert "roles: no enabled AFTER INSERT OR UPDATE OR DELETE row trigger" in problems
    assert "workflows: unexpected policy everything" in problems
    assert "marketplace_items: policy tenant_isolation is missing" in problems
    assert "audit_logs: no enabled append-only trigger" in problems
    assert "orchestrator_app has TRUNCATE on role_memberships" in problems
    for privilege, table in (("UPDATE", "workflows"), ("DELETE", "organizations"), ("MAINTAIN", "executions")):
        assert f"orchestrator_app has {privilege} on {table} (table-level: it can LOCK the table" in problems
    assert "function tenant_delete must be SECURITY DEFINER" in problems
    by_table = {t.table: t for t in report.tables}
    assert by_table["users"].rls_enabled is False and by_table["roles"].audit_trigger is False
    # upgrade runs the check even when there is nothing to apply, and fails loudly
    with pytest.raises(migrator.SecurityCheckFailed, match="users: row-level security is not enabled"):
        migrator.upgrade(migrated_url)


# the references 0004 makes tenant-consistent: (table, column, parent table)
NULLABLE_REFERENCES = [
    ("workflows", "owner_id", "users"), ("workflow_versions", "created_by", "users"),
    ("executions", "triggered_by", "users"), ("role_memberships", "granted_by", "users"),
    ("marketplace_items", "workflow_id", "workflows"),
]
# a row of each table, with {org} and {target} (the referenced id) left to fill; returns its key
PLANTED_ROWS = {
    "workflows": "INSERT INTO workflows (organization_id, owner_id, name, engine_type, definition) "
                 "VALUES ({org}, {target}, 'owned', 'custom', '{{}}') RETURNING id",
    "workflow_versions": "INSERT INTO workflow_versions (organization_id, workflow_id, version, definition, checksum, "
                         "created_by) SELECT {org}, {workflow}, coalesce(max(version), 0) + 1, '{{}}', 'x', {target} "
                         "FROM workflow_versions RETURNING id",
    "executions": "INSERT INTO executions (organization_id, workflow_id, workflow_version, triggered_by) "
                  "VALUES ({org}, {workflow}, 1, {target}) RETURNING id",
    "role_memberships": "WITH role AS (INSERT INTO roles (organization_id, name) VALUES ({org}, gen_random_uuid()::text) "
                        "RETURNING id) INSERT INTO role_memberships (organization_id, user_id, role_id, granted_by) "
                        "SELECT {org}, {user}, role.id, {target} FROM role RETURNING role_id",
    "marketplace_items": "INSERT INTO marketplace_items (organization_id, workflow_id, name, category, engine_type) "
                         "VALUES ({org}, {target}, 'listing', 'nlp', 'custom') RETURNING id",
}


def _plant_cross_tenant_references(url: str) -> dict:
    """As the superuser, at revision 0003 (where a tenant could do the same through the app role):
    for each nullable reference, a row of organization A pointing into organization B and one
    pointing inside A. Returns the ids: organizations, parents, and (table, column) → (violating, kept)."""
    ids: dict = {}
    with _connect(url) as conn:
        for org in ("a", "b"):
            ids[org] = conn.execute("INSERT INTO organizations (slug, name) VALUES (%s, %s) RETURNING id",
                                    (f"org-{org}", org)).fetchone()[0]
            ids[f"{org}-users"] = conn.execute(
                "INSERT INTO users (organization_id, email, display_name) VALUES (%s, %s, 'x') RETURNING id",
                (ids[org], f"{org}@{org}.test")).fetchone()[0]
            ids[f"{org}-workflows"] = conn.execute(
                "INSERT INTO workflows (organization_id, name, engine_type, definition) "
                "VALUES (%s, 'flow', 'custom', '{}') RETURNING id", (ids[org],)).fetchone()[0]
        for table, column, parent in NULLABLE_REFERENCES:
            keys = []
            for target in ("b", "a"):
                statement = PLANTED_ROWS[table].format(org="%(org)s", target="%(target)s", user="%(user)s",
                                                       workflow="%(workflow)s")
                keys.append(conn.execute(statement, {"org": ids["a"], "target": ids[f"{target}-{parent}"],
                                                     "user": ids["a-users"], "workflow": ids["a-workflows"]}
                                         ).fetchone()[0])
            ids[(table, column)] = tuple(keys)
    return ids


def test_0004_clears_references_into_another_organization_and_rolls_back(database):
    migrator.upgrade(database, target="0003", check=False)  # 0003's grants fail today's security check
    ids = _plant_cross_tenant_references(database)

    report = migrator.upgrade(database)
    assert report.applied_revisions == HEAD[3:] and report.security.ok
    assert catalog.check_drift(database) == []
    with _connect(database) as conn:
        for table, column, parent in NULLABLE_REFERENCES:
            key = "role_id" if table == "role_memberships" else "id"
            violating, kept = ids[(table, column)]
            values = dict(conn.execute(f"SELECT {key}, {column} FROM {table} WHERE {key} IN (%s, %s)",
                                       (violating, kept)).fetchall())
            assert values == {violating: None, kept: ids[f"a-{parent}"]}, (table, column)
            # the repair is in A's audit trail, made by the migration, with the old reference
            [(organization, actor, old, new)] = conn.execute(
                "SELECT organization_id, actor_role, old_values ->> %s, new_values ->> %s FROM audit_logs "
                "WHERE table_name = %s AND action = 'UPDATE' AND record_id LIKE %s",
                (column, column, table, f"%{violating}%")).fetchall()
            assert (organization, actor, old, new) == (ids["a"], "orchestrator_owner", str(ids[f"b-{parent}"]), None)
        assert conn.execute("SELECT count(*) FROM audit_logs WHERE action = 'UPDATE'").fetchone()[0] == 5

    # rollback: the 0001 keys and (0005) the app role's table-level UPDATE and DELETE come back, and
    # the security check says what that reopens; cleared references stay cleared
    with pytest.raises(migrator.SecurityCheckFailed) as reopened:
        migrator.rollback(database, "0003")
    assert reopened.value.migration.applied_revisions == HEAD[3:][::-1]
    problems = "\n".join(reopened.value.report.problems)
    for table in ("organizations", "executions", "audit_logs"):
        for privilege in ("UPDATE", "DELETE"):
            assert (f"orchestrator_app has {privilege} on {table}" in problems) == (table != "audit_logs")
    assert "function tenant_delete is missing" in problems
    with _connect(database) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0003"
        keys = dict(conn.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                 "WHERE contype = 'f'").fetchall())
        assert keys["fk_executions_triggered_by_users"] == \
            "FOREIGN KEY (triggered_by) REFERENCES users(id) ON DELETE SET NULL"
        assert "fk_role_memberships_user_id_users" in keys and "fk_executions_tenant_triggered_by" not in keys
        assert conn.execute("SELECT triggered_by FROM executions WHERE id = %s",
                            (ids[("executions", "triggered_by")][0],)).fetchone()[0] is None
    assert migrator.upgrade(database).applied_revisions == HEAD[3:]
    assert catalog.check_drift(database) == [] and security.check_security(database).ok


def test_drop_everything_leaves_an_empty_schema_and_the_roles(migrated_url):
    dropped = migrator.drop_everything(migrated_url)
    assert {"organizations", "audit_logs", "_migration_history", "alembic_version"} <= set(dropped)
    with _connect(migrated_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = 'public'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                            "WHERE n.nspname = 'public'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'orchestrator\\_%'").fetchone()[0] == 3
        assert not conn.execute("SELECT has_schema_privilege('orchestrator_owner', 'public', 'CREATE')").fetchone()[0]
    assert migrator.upgrade(migrated_url).applied_revisions == HEAD


def _with_login(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{user}:{quote(password, safe='')}@{host}", parts.path, parts.query, ""))


def test_a_createrole_login_that_owns_the_database_can_migrate(stack):
    """Neon's shape: not a superuser; CREATEROLE, owner of its database, admin of the roles it created
    (PostgreSQL >= 16 gives a role's creator ADMIN without SET or INHERIT — simulated here, since the
    roles already exist in this cluster)."""
    login, password = f"od_neon_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    with fresh_database(stack) as url:  # makes sure the roles exist, whichever test ran first
        migrator.upgrade(url)
    with psycopg.connect(admin_url(stack), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
            sql.Identifier(login), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT orchestrator_owner, orchestrator_app, orchestrator_readonly TO {} "
                             "WITH ADMIN TRUE, INHERIT FALSE, SET FALSE").format(sql.Identifier(login)))
    try:
        with fresh_database(stack, owner=login) as url:
            as_login = _with_login(url, login, password)
            report = migrator.upgrade(as_login)
            assert report.applied_revisions == HEAD and report.security.ok
            assert catalog.check_drift(as_login) == []
            assert _scalar(url, "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
                                "WHERE relname IN ('users', 'audit_logs', '_migration_history')") == "orchestrator_owner"
            assert _scalar(url, "SELECT applied_by FROM _migration_history ORDER BY id LIMIT 1").startswith(login)
            assert [a.revision for a in migrator.rollback(as_login, "base").applied] == HEAD[::-1]
            assert migrator.upgrade(as_login).applied_revisions == HEAD
            assert catalog.table_stats(as_login)
            migrator.drop_everything(as_login)
    finally:
        with psycopg.connect(admin_url(stack), autocommit=True) as conn:
            for statement in ("REVOKE orchestrator_owner, orchestrator_app, orchestrator_readonly FROM {} CASCADE",
                              "DROP ROLE {}"):
                conn.execute(sql.SQL(statement).format(sql.Identifier(login)))


def test_the_lock_times_out_with_a_clear_error(migrated_url):
    with _connect(migrated_url) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (migrator.LOCK_KEY,))
        with pytest.raises(migrator.MigrationLockTimeout, match="another migration"):
            migrator.upgrade(migrated_url, lock_timeout_s=0.5)


def test_on_a_new_cluster_a_createrole_login_creates_the_roles_itself(session_dir):
    """The roles do not exist yet: 0002 creates them as a non-superuser (as on a new Neon project).
    A private server, so that the cluster-wide roles can start from nothing; under the session's
    directory, not pytest's 0700 temp root, which the server's OS user cannot enter."""
    from orchestrator_data.stack.common import Secrets, free_port
    from orchestrator_data.stack.postgres import PostgresService

    root = session_dir / f"createrole-{uuid.uuid4().hex[:8]}"
    server = PostgresService(root, free_port(), Secrets(root / "secrets.json"))
    server.start()
    try:
        login, password = "neon_owner", secrets.token_urlsafe(18)
        with psycopg.connect(urls.libpq_url(server.url("postgres")), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE neon_owner LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
                sql.Literal(password)))
            conn.execute("CREATE DATABASE neondb OWNER neon_owner")
            assert not conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'orchestrator%'").fetchone()[0]
        url = _with_login(server.url("neondb"), login, password)
        report = migrator.upgrade(url)
        assert report.applied_revisions == HEAD and report.security.ok
        with psycopg.connect(urls.libpq_url(server.url("postgres")), autocommit=True) as conn:
            roles = conn.execute("SELECT rolname, rolcanlogin, rolbypassrls FROM pg_roles "
                                 "WHERE rolname LIKE 'orchestrator%' ORDER BY 1").fetchall()
            assert roles == [("orchestrator_app", False, False), ("orchestrator_owner", False, False),
                             ("orchestrator_readonly", False, False)]
            assert conn.execute("SELECT pg_has_role('neon_owner', 'orchestrator_owner', 'SET')").fetchone()[0]
        assert [a.revision for a in migrator.rollback(url, "base").applied] == HEAD[::-1]
        assert migrator.upgrade(url).applied_revisions == HEAD
    finally:
        server.stop()
