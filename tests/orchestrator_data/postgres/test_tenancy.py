"""Tenant isolation, the audit trail and the roles, through the roles the product really uses.

The test connects as the stack's superuser and switches with SET LOCAL ROLE inside each
transaction, exactly as `tenancy.tenant_transaction` does for the product's login."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from orchestrator_data.postgres import client, models
from orchestrator_data.postgres.tenancy import (
    APP_ROLE,
    InvalidTenant,
    TenancyError,
    as_uuid,
    current_tenant,
    delete_rows,
    tenant_transaction,
)
from tests.databases import REVISIONS

pytestmark = pytest.mark.integration

RLS_DENIED = "42501"  # insufficient_privilege: "new row violates row-level security policy", "permission denied"
BAD_UUID = "22P02"  # invalid_text_representation
FK_VIOLATION = "23503"


def sqlstate(exc: sa_exc.DBAPIError) -> str:
    return exc.orig.sqlstate


def _tenant(conn: sa.Connection, slug: str) -> dict:
    """One organization with a row in every tenant table, written as the superuser."""
    ids = {"org": uuid.uuid4(), "user": uuid.uuid4(), "role": uuid.uuid4(), "workflow": uuid.uuid4(),
           "version": uuid.uuid4(), "execution": uuid.uuid4(), "published": uuid.uuid4(), "draft": uuid.uuid4()}
    conn.execute(sa.insert(models.organizations).values(id=ids["org"], slug=slug, name=slug.title()))
    conn.execute(sa.insert(models.users).values(id=ids["user"], organization_id=ids["org"],
                                                email=f"owner@{slug}.test", display_name="Owner"))
    conn.execute(sa.insert(models.roles).values(id=ids["role"], organization_id=ids["org"], name="admin"))
    conn.execute(sa.insert(models.role_memberships).values(organization_id=ids["org"], user_id=ids["user"],
                                                           role_id=ids["role"]))
    conn.execute(sa.insert(models.workflows).values(
        id=ids["workflow"], organization_id=ids["org"], owner_id=ids["user"], name=f"{slug} summarizer",
        engine_type="langchain", definition={"nodes": []}))
    conn.execute(sa.insert(models.workflow_versions).values(
        id=ids["version"], organization_id=ids["org"], workflow_id=ids["workflow"], version=1,
        definition={"nodes": []}, checksum="0" * 64, created_by=ids["user"]))
    conn.execute(sa.insert(models.executions).values(
        id=ids["execution"], organization_id=ids["org"], workflow_id=ids["workflow"], workflow_version=1,
        status="succeeded"))
    for key, status in (("published", "published"), ("draft", "draft")):
        conn.execute(sa.insert(models.marketplace_items).values(
            id=ids[key], organization_id=ids["org"], workflow_id=ids["workflow"], name=f"{slug} {status} summarizer",
            category="nlp", engine_type="langchain", status=status))
    return ids


@pytest.fixture
def tenants(engine):
    with engine.begin() as conn:
        return _tenant(conn, "acme"), _tenant(conn, "globex")


def _count_by_org(conn: sa.Connection, table: str) -> dict:
    column = "id" if table == "organizations" else "organization_id"
    return dict(conn.execute(sa.text(f"SELECT {column}, count(*) FROM {table} GROUP BY 1")).all())


def test_each_table_shows_only_the_current_organization(engine, tenants):
    a, b = tenants
    with tenant_transaction(engine, a["org"], a["user"]) as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar_one() == APP_ROLE
        assert current_tenant(conn) == a["org"]
        for table in ("organizations", *models.TENANT_TABLES):
            seen = _count_by_org(conn, table)
            if table == "marketplace_items":  # the other tenant's published listing is public
                assert seen == {a["org"]: 2, b["org"]: 1}, table
                ids = set(conn.execute(sa.text("SELECT id FROM marketplace_items")).scalars())
                assert b["published"] in ids and b["draft"] not in ids
            else:
                assert seen == {a["org"]: 1}, table
        assert conn.execute(sa.text("SELECT count(*) FROM workflows WHERE id = :id"),
                            {"id": b["workflow"]}).scalar_one() == 0


@pytest.mark.parametrize("table", ["users", "roles", "workflows", "executions", "marketplace_items"])
def test_rows_cannot_be_written_into_another_organization(engine, tenants, table):
    a, b = tenants
    values = {
        "users": {"email": "intruder@x.test", "display_name": "Intruder"},
        "roles": {"name": "intruder"},
        "workflows": {"name": "intruder", "engine_type": "custom", "definition": {}},
        "executions": {"workflow_id": b["workflow"], "workflow_version": 1},
        "marketplace_items": {"name": "intruder", "category": "x", "engine_type": "custom"},
    }[table]
    with pytest.raises(sa_exc.DBAPIError) as refused, tenant_transaction(engine, a["org"]) as conn:
        conn.execute(sa.insert(models.metadata.tables[table]).values(organization_id=b["org"], **values))
    assert sqlstate(refused.value) == RLS_DENIED
    assert "row-level security" in str(refused.value.orig)


def test_a_row_cannot_be_moved_to_another_organization(engine, tenants):
    a, b = tenants
    for table, key in (("workflows", "workflow"), ("users", "user"), ("executions", "execution")):
        with pytest.raises(sa_exc.DBAPIError) as refused, tenant_transaction(engine, a["org"]) as conn:
            conn.execute(sa.text(f"UPDATE {table} SET organization_id = :b WHERE id = :id"),
                         {"b": b["org"], "id": a[key]})
        assert sqlstate(refused.value) == RLS_DENIED, table


def test_another_organizations_rows_cannot_be_updated_or_deleted(engine, tenants):
    a, b = tenants
    with tenant_transaction(engine, a["org"]) as conn:
        assert conn.execute(sa.text("UPDATE workflows SET name = 'hijacked' WHERE id = :id"),
                            {"id": b["workflow"]}).rowcount == 0
        assert delete_rows(conn, "executions", id=b["execution"]) == 0
        # the published listing is readable, not writable
        assert conn.execute(sa.text("UPDATE marketplace_items SET downloads = 999999 WHERE id = :id"),
                            {"id": b["published"]}).rowcount == 0
        assert delete_rows(conn, "marketplace_items", id=b["published"]) == 0
        assert conn.execute(sa.text("UPDATE marketplace_items SET downloads = 5 WHERE id = :id"),
                            {"id": a["published"]}).rowcount == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM workflows WHERE id = :id"),
                            {"id": b["workflow"]}).scalar_one() == "globex summarizer"
        assert conn.execute(sa.text("SELECT downloads FROM marketplace_items WHERE id = :id"),
                            {"id": b["published"]}).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM executions")).scalar_one() == 2


def _tenant_foreign_keys(conn: sa.Connection) -> list[sa.Row]:
    """Every foreign key of every tenant table, from the catalog: name, table, columns, parent table
    and the parent's columns (in key order)."""
    return conn.execute(sa.text(
        "SELECT c.conname, c.conrelid::regclass::text AS table_name, c.confrelid::regclass::text AS parent, "
        "  ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i) "
        "        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS columns, "
        "  ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(n, i) "
        "        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS parent_columns "
        "FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY(:tables) ORDER BY 1"
    ), {"tables": list(models.TENANT_TABLES)}).all()


def _point(engine, key: sa.Row, organization: uuid.UUID, values: dict) -> tuple[str, str | None]:
    """As the app role in `organization`, set the key's columns of that organization's rows of its
    table to `values`; returns the refusal's SQLSTATE and constraint name. An UPDATE probes every
    table without building a valid new row; the user triggers (audit, workflow_versions'
    immutability) are off for it so that only the key decides. Rolled back."""
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            conn.execute(sa.text(f"ALTER TABLE {key.table_name} DISABLE TRIGGER USER"))
            conn.execute(sa.text(f"SET LOCAL ROLE {APP_ROLE}"))
            conn.execute(sa.text("SELECT set_config('app.organization_id', :org, true)"), {"org": str(organization)})
            assignments = ", ".join(f"{column} = :{column}" for column in values)
            with pytest.raises(sa_exc.DBAPIError) as refused:
                conn.execute(sa.text(f"UPDATE {key.table_name} SET {assignments}"), values)
        finally:
            transaction.rollback()
    return sqlstate(refused.value), refused.value.orig.diag.constraint_name


def test_no_foreign_key_of_a_tenant_table_can_point_into_another_organization(engine, tenants):
    """Every foreign key of every tenant table, enumerated from the catalog (so a new one is covered
    without touching this test), pointed from organization A's rows at organization B's, is refused
    exactly as an id that exists nowhere is: same SQLSTATE, same constraint, so the error does not
    tell A which of B's ids exist."""
    a, b = tenants
    with engine.connect() as conn:
        keys = _tenant_foreign_keys(conn)
    assert {key.table_name for key in keys} == set(models.TENANT_TABLES)
    for key in keys:
        pairs = list(zip(key.columns, key.parent_columns))
        if key.parent in models.TENANT_TABLES:
            # the key itself carries the organization; a single-column key beside a tenant-consistent
            # one would make the constraint a violation names depend on trigger order
            assert ("organization_id", "organization_id") in pairs, f"{key.conname} is not tenant-consistent"
        pointing = [(column, parent_column) for column, parent_column in pairs if parent_column != "organization_id"]
        with engine.connect() as conn:
            parent_tenant = "id" if key.parent == "organizations" else "organization_id"
            b_row = conn.execute(sa.text(
                f"SELECT {', '.join(p for _, p in pointing)} FROM {key.parent} WHERE {parent_tenant} = :b LIMIT 1"
            ), {"b": b["org"]}).one()
        into_b = _point(engine, key, a["org"], {column: value for (column, _), value in zip(pointing, b_row)})
        nowhere = _point(engine, key, a["org"], {column: uuid.uuid4() for column, _ in pointing})
        assert into_b == nowhere, key.conname
        assert into_b in ((FK_VIOLATION, key.conname), (RLS_DENIED, None)), key.conname  # the key, or the policy


def test_an_execution_cannot_name_another_organizations_user(engine, tenants):
    a, b = tenants
    refusals = []
    for user in (b["user"], uuid.uuid4()):
        with pytest.raises(sa_exc.DBAPIError) as refused, tenant_transaction(engine, a["org"], a["user"]) as conn:
            conn.execute(sa.insert(models.executions).values(
                organization_id=a["org"], workflow_id=a["workflow"], workflow_version=1, triggered_by=user))
        refusals.append((sqlstate(refused.value), str(refused.value.orig).replace(str(user), "<user>")))
    assert refusals[0] == refusals[1]
    assert refusals[0][0] == FK_VIOLATION and "fk_executions_tenant_triggered_by" in refusals[0][1]
    # deleting a user clears only the reference (SET NULL (triggered_by)), inside its own organization
    execution = uuid.uuid4()
    with tenant_transaction(engine, a["org"], a["user"]) as conn:
        conn.execute(sa.insert(models.executions).values(
            id=execution, organization_id=a["org"], workflow_id=a["workflow"], workflow_version=1,
            triggered_by=a["user"]))
        assert delete_rows(conn, "users", id=a["user"]) == 1
        row = conn.execute(sa.text("SELECT organization_id, triggered_by FROM executions WHERE id = :id"),
                           {"id": execution}).one()
    assert (row.organization_id, row.triggered_by) == (a["org"], None)


LOCK_MODES = ("ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE",  # what SELECT, FOR UPDATE and row writes take
              "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE")


def test_the_app_role_cannot_lock_a_shared_table_beyond_row_exclusive(engine, tenants):
    """Each lock mode on organizations, every tenant table and audit_logs, as the app role with a
    tenant set: above ROW EXCLUSIVE (audit_logs, which it only reads: above ACCESS SHARE) refused."""
    a, _ = tenants
    tables = ("organizations", *models.TENANT_TABLES, "audit_logs")
    refused: dict[str, list[str]] = {table: [] for table in tables}
    with tenant_transaction(engine, a["org"], a["user"]) as conn:
        for table in tables:
            for mode in LOCK_MODES:
                savepoint = conn.begin_nested()
                try:
                    conn.execute(sa.text(f"LOCK TABLE {table} IN {mode} MODE NOWAIT"))
                except sa_exc.DBAPIError as exc:
                    assert sqlstate(exc) == RLS_DENIED and "permission denied" in str(exc.orig), (table, mode)
                    refused[table].append(mode)
                savepoint.rollback()
        # nor through a view of its own: the base table is locked with the view owner's privileges
        conn.execute(sa.text("CREATE TEMP VIEW every_execution AS SELECT * FROM executions"))
        savepoint = conn.begin_nested()
        with pytest.raises(sa_exc.DBAPIError) as through_view:
            conn.execute(sa.text("LOCK TABLE every_execution IN ACCESS EXCLUSIVE MODE NOWAIT"))
        savepoint.rollback()
        assert sqlstate(through_view.value) == RLS_DENIED
        # the row locks its work needs still work
        assert conn.execute(sa.text("SELECT id FROM executions FOR UPDATE")).scalars().all() == [a["execution"]]
    assert refused == {table: list(LOCK_MODES[1 if table == "audit_logs" else 3:]) for table in tables}


def test_the_app_role_updates_through_column_grants_and_deletes_through_tenant_delete(engine, tenants):
    a, b = tenants
    with engine.connect() as conn:
        for table in ("organizations", *models.TENANT_TABLES):
            privileges = conn.execute(sa.text(
                "SELECT has_table_privilege(:role, :table, 'UPDATE'), has_table_privilege(:role, :table, 'DELETE')"
            ), {"role": APP_ROLE, "table": table}).one()
            assert tuple(privileges) == (False, False), table
            for column in models.metadata.tables[table].columns:  # every column an UPDATE can set
                # not the generated search vector, nor row_version, which only its trigger sets (0006)
                settable = column.computed is None and column.name != "row_version"
                assert conn.execute(sa.text("SELECT has_column_privilege(:role, :table, :column, 'UPDATE')"), {
                    "role": APP_ROLE, "table": table, "column": column.name,
                }).scalar_one() == settable, (table, column.name)

    with pytest.raises(sa_exc.DBAPIError) as refused, tenant_transaction(engine, a["org"]) as conn:
        conn.execute(sa.text("DELETE FROM executions WHERE id = :id"), {"id": a["execution"]})
    assert sqlstate(refused.value) == RLS_DENIED and "permission denied" in str(refused.value.orig)

    with tenant_transaction(engine, a["org"], a["user"]) as conn:
        assert conn.execute(sa.text("UPDATE executions SET status = 'failed', error = 'boom' WHERE id IN (:a, :b)"),
                            {"a": a["execution"], "b": b["execution"]}).rowcount == 1
        assert delete_rows(conn, "executions", id=[a["execution"], b["execution"]]) == 1
        assert delete_rows(conn, "organizations", id=b["org"]) == 0
        assert delete_rows(conn, "marketplace_items", organization_id=b["org"]) == 0
    with engine.connect() as conn:
        assert set(conn.execute(sa.text("SELECT id FROM executions")).scalars()) == {b["execution"]}
        assert conn.execute(sa.text("SELECT count(*) FROM organizations")).scalar_one() == 2
        deleted = conn.execute(sa.text(
            "SELECT organization_id, actor_id, actor_role, old_values ->> 'error' AS error FROM audit_logs "
            "WHERE table_name = 'executions' AND action = 'DELETE'")).one()
    assert tuple(deleted) == (a["org"], a["user"], APP_ROLE, "boom")

    # fail closed without a tenant; only tables under tenant isolation; a match it can check
    for organization, table, match, expected in (
        (None, "executions", {"id": b["execution"]}, RLS_DENIED),
        (a["org"], "audit_logs", {"id": 1}, RLS_DENIED),
        (a["org"], "_migration_history", {"id": 1}, RLS_DENIED),
        (a["org"], "executions", {"no_such_column": 1}, "42703"),
        (a["org"], "executions", {"id": None}, "22023"),
        (a["org"], "executions", {"id": "not-a-uuid"}, BAD_UUID),
    ):
        with pytest.raises(sa_exc.DBAPIError) as refused, tenant_transaction(engine, organization) as conn:
            delete_rows(conn, table, **match)
        assert sqlstate(refused.value) == expected, (table, match)
    with pytest.raises(sa_exc.DBAPIError) as refused, tenant_transaction(engine, a["org"]) as conn:
        conn.execute(sa.text("SELECT tenant_delete('workflows', '{}')"))  # never "everything"
    assert sqlstate(refused.value) == "22023"
    with pytest.raises(ValueError):
        delete_rows(conn, "workflows")


def test_without_an_organization_nothing_is_visible_or_writable(engine, tenants):
    with tenant_transaction(engine, None) as conn:
        for table in ("organizations", *models.TENANT_TABLES, "audit_logs"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == 0, table
        assert conn.execute(sa.text("SELECT count(*) FROM search_marketplace_items('summarizer')")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM search_workflows('summarizer')")).scalar_one() == 0
    with pytest.raises(sa_exc.DBAPIError) as refused, tenant_transaction(engine, None) as conn:
        conn.execute(sa.insert(models.roles).values(organization_id=tenants[0]["org"], name="x"))
    assert sqlstate(refused.value) == RLS_DENIED


@pytest.mark.parametrize("crafted", ["", "   ", "x' OR 1=1", "' OR '1'='1", "00000000-0000-0000-0000-000000000000' OR 'a'='a",
                                     "{}", "NULL"])
def test_crafted_organization_values_never_leak(engine, tenants, crafted):
    with pytest.raises(InvalidTenant) as invalid:  # the helper refuses before sending anything
        as_uuid(crafted)
    assert crafted.strip() == "" or crafted not in str(invalid.value)
    # and the database, given the raw value by a client that skipped the helper, leaks nothing
    with engine.connect() as conn, conn.begin():
        conn.execute(sa.text(f"SET LOCAL ROLE {APP_ROLE}"))
        conn.execute(sa.text("SELECT set_config('app.organization_id', :v, true)"), {"v": crafted})
        try:
            rows = conn.execute(sa.text("SELECT count(*) FROM workflows")).scalar_one()
        except sa_exc.DBAPIError as exc:
            assert sqlstate(exc) == BAD_UUID
        else:
            assert crafted == "" and rows == 0


def test_an_unknown_but_valid_organization_sees_nothing(engine, tenants):
    with tenant_transaction(engine, uuid.uuid4()) as conn:
        for table in ("organizations", *models.TENANT_TABLES):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE status IS DISTINCT FROM 'published'"
                                        if table == "marketplace_items" else f"SELECT count(*) FROM {table}")
                                ).scalar_one() == 0, table


def test_the_tenant_ends_with_the_transaction_on_a_pooled_connection(migrated_url, tenants):
    engine = client.create_engine(migrated_url, pool=client.PoolOptions(size=1, max_overflow=0))
    try:
        a, _ = tenants
        with tenant_transaction(engine, a["org"]) as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            assert conn.execute(sa.text("SELECT count(*) FROM workflows")).scalar_one() == 1
        with engine.connect() as conn, conn.begin():
            assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() == pid  # the same session
            assert conn.execute(sa.text("SELECT current_setting('app.organization_id', true)")).scalar_one() == ""
            conn.execute(sa.text(f"SET LOCAL ROLE {APP_ROLE}"))
            assert conn.execute(sa.text("SELECT count(*) FROM workflows")).scalar_one() == 0
        with engine.connect() as conn:
            conn.begin()
            with pytest.raises(TenancyError):
                with tenant_transaction(conn, a["org"]):
                    pass
            conn.rollback()
    finally:
        engine.dispose()


def test_full_text_search_functions_keep_to_the_tenant_and_the_published_catalogue(engine, tenants):
    a, b = tenants
    with tenant_transaction(engine, a["org"]) as conn:
        found = conn.execute(sa.text("SELECT id, organization_id FROM search_workflows('summarizer')")).all()
        assert [(r.id, r.organization_id) for r in found] == [(a["workflow"], a["org"])]
        listed = set(conn.execute(sa.text("SELECT id FROM search_marketplace_items('summarizer')")).scalars())
        assert listed == {a["published"], b["published"]}


def test_every_insert_update_and_delete_leaves_an_audit_row(engine, tenants):
    a, b = tenants
    workflow = uuid.uuid4()
    with tenant_transaction(engine, a["org"], a["user"]) as conn:
        conn.execute(sa.insert(models.workflows).values(
            id=workflow, organization_id=a["org"], name="draft flow", engine_type="crewai", definition={"n": 1}))
        insert_txid = conn.execute(sa.text("SELECT txid_current()")).scalar_one()
    with tenant_transaction(engine, a["org"], a["user"]) as conn:
        conn.execute(sa.text("UPDATE workflows SET name = 'final flow' WHERE id = :id"), {"id": workflow})
    with tenant_transaction(engine, a["org"], a["user"]) as conn:
        assert delete_rows(conn, "workflows", id=workflow) == 1

    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT * FROM audit_logs WHERE table_name = 'workflows' AND record_id = :id ORDER BY id"
        ), {"id": str(workflow)}).mappings().all()
    assert [r["action"] for r in rows] == ["INSERT", "UPDATE", "DELETE"]
    for r in rows:
        assert r["organization_id"] == a["org"]
        assert r["actor_id"] == a["user"]
        assert r["actor_role"] == APP_ROLE
        assert r["login_role"] == "postgres"  # the session's login behind SET ROLE
        assert r["occurred_at"] is not None
        for values in (r["old_values"], r["new_values"]):
            assert values is None or "search_vector" not in values
    insert, update, delete = rows
    assert insert["old_values"] is None and insert["new_values"]["name"] == "draft flow"
    assert insert["transaction_id"] == insert_txid
    assert insert["new_values"]["definition"] == {"n": 1}
    assert update["old_values"]["name"] == "draft flow" and update["new_values"]["name"] == "final flow"
    assert delete["old_values"]["name"] == "final flow" and delete["new_values"] is None

    # role_memberships has a composite key; its record_id names both parts
    with tenant_transaction(engine, a["org"], a["user"]) as conn:
        assert delete_rows(conn, "role_memberships", user_id=a["user"]) == 1
    with engine.connect() as conn:
        record = conn.execute(sa.text(
            "SELECT record_id FROM audit_logs WHERE table_name = 'role_memberships' AND action = 'DELETE'"
        )).scalar_one()
    assert record == f"{a['user']},{a['role']}"

    # the app reads its own organization's trail, not the other's
    with tenant_transaction(engine, a["org"]) as conn:
        orgs = set(conn.execute(sa.text("SELECT organization_id FROM audit_logs")).scalars())
    assert orgs == {a["org"]}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_logs WHERE organization_id = :b"),
                            {"b": b["org"]}).scalar_one() > 0


def test_a_malformed_actor_fails_the_write_instead_of_recording_a_wrong_one(engine, tenants):
    a, _ = tenants
    with pytest.raises(sa_exc.DBAPIError) as refused, tenant_transaction(engine, a["org"]) as conn:
        conn.execute(sa.text("SELECT set_config('app.user_id', 'not-a-user', true)"))
        conn.execute(sa.text("UPDATE workflows SET name = 'x' WHERE id = :id"), {"id": a["workflow"]})
    assert sqlstate(refused.value) == BAD_UUID


@pytest.mark.parametrize("statement", [
    "UPDATE audit_logs SET actor_role = 'nobody'",
    "DELETE FROM audit_logs",
    "TRUNCATE audit_logs",
    "INSERT INTO audit_logs (actor_role, action, table_name) VALUES ('forged', 'INSERT', 'users')",
])
def test_the_app_role_cannot_change_audit_rows(engine, tenants, statement):
    a, _ = tenants
    with pytest.raises(sa_exc.DBAPIError) as refused, tenant_transaction(engine, a["org"]) as conn:
        conn.execute(sa.text(statement))
    assert sqlstate(refused.value) == RLS_DENIED
    assert "permission denied" in str(refused.value.orig)


def test_the_append_only_trigger_holds_even_if_a_grant_slips_through(engine, tenants):
    a, _ = tenants
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM audit_logs")).scalar_one()
        conn.rollback()
        mistake = conn.begin()  # a mistaken grant and an over-broad policy, rolled back at the end
        try:
            conn.execute(sa.text(f"GRANT UPDATE, DELETE, TRUNCATE ON audit_logs TO {APP_ROLE}"))
            conn.execute(sa.text(f"CREATE POLICY mistake ON audit_logs TO {APP_ROLE} USING (true)"))
            for statement in ("UPDATE audit_logs SET actor_role = 'nobody'", "DELETE FROM audit_logs",
                              "TRUNCATE audit_logs"):
                savepoint = conn.begin_nested()
                conn.execute(sa.text(f"SET LOCAL ROLE {APP_ROLE}"))
                with pytest.raises(sa_exc.DBAPIError) as refused:
                    conn.execute(sa.text(statement))
                assert "append-only" in str(refused.value.orig), statement
                savepoint.rollback()
        finally:
            mistake.rollback()
        # the owner's members (the migrating login, `reset`) may remove rows
        owner = conn.begin()
        try:
            assert conn.execute(sa.text("DELETE FROM audit_logs")).rowcount == before
        finally:
            owner.rollback()
        assert conn.execute(sa.text("SELECT count(*) FROM audit_logs")).scalar_one() == before > 0


def test_workflow_versions_are_immutable(engine, tenants):
    a, _ = tenants
    with pytest.raises(sa_exc.DBAPIError) as refused, tenant_transaction(engine, a["org"]) as conn:
        conn.execute(sa.text("UPDATE workflow_versions SET definition = '{\"evil\": 1}' WHERE id = :id"),
                     {"id": a["version"]})
    assert "immutable" in str(refused.value.orig)
    with pytest.raises(sa_exc.DBAPIError), engine.begin() as conn:  # not even the owner
        conn.execute(sa.text("UPDATE workflow_versions SET change_note = 'rewritten' WHERE id = :id"),
                     {"id": a["version"]})
    # erasing the author still works: the one change allowed is ON DELETE SET NULL of created_by
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM users WHERE id = :u"), {"u": a["user"]})
        version = conn.execute(sa.text("SELECT created_by, version FROM workflow_versions WHERE id = :id"),
                               {"id": a["version"]}).one()
    assert version.created_by is None and version.version == 1


def test_the_readonly_role_reads_every_tenant_and_writes_nothing(engine, tenants):
    a, b = tenants
    with engine.connect() as conn, conn.begin():
        conn.execute(sa.text("SET LOCAL ROLE orchestrator_readonly"))
        for table in ("organizations", *models.TENANT_TABLES):
            assert set(_count_by_org(conn, table)) == {a["org"], b["org"]}, table
        assert set(_count_by_org(conn, "audit_logs")) == {a["org"], b["org"]}
        assert conn.execute(sa.text("SELECT count(*) FROM _migration_history")).scalar_one() == len(REVISIONS)
    with pytest.raises(sa_exc.DBAPIError) as refused, engine.connect() as conn, conn.begin():
        conn.execute(sa.text("SET LOCAL ROLE orchestrator_readonly"))
        conn.execute(sa.text("DELETE FROM executions"))
    assert sqlstate(refused.value) == RLS_DENIED


def test_roles_and_ownership(engine):
    with engine.connect() as conn:
        roles = {r.rolname: r for r in conn.execute(sa.text(
            "SELECT rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname LIKE 'orchestrator\\_%'"))}
        assert set(roles) >= {"orchestrator_owner", "orchestrator_app", "orchestrator_readonly"}
        for role in roles.values():
            assert not role.rolcanlogin and not role.rolsuper and not role.rolbypassrls
        owners = dict(conn.execute(sa.text(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'i')")).all())
        assert set(owners.values()) == {"orchestrator_owner"}
        assert "_migration_history" in owners and "alembic_version" in owners
        functions = dict(conn.execute(sa.text(
            "SELECT p.proname, pg_get_userbyid(p.proowner) FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname = 'public'")).all())
        assert set(functions.values()) == {"orchestrator_owner"}
        assert not conn.execute(sa.text(
            "SELECT has_function_privilege('orchestrator_app', 'audit_row_change()', 'EXECUTE')")).scalar_one()


def test_audit_log_json_is_plain_json(engine, tenants):
    """old/new values are jsonb documents the search sync can index as they are."""
    with engine.connect() as conn:
        value = conn.execute(sa.text(
            "SELECT new_values FROM audit_logs WHERE table_name = 'organizations' LIMIT 1")).scalar_one()
    assert json.loads(json.dumps(value))["slug"] in ("acme", "globex")
