"""app role grants that cannot LOCK a shared table: column-level UPDATE, deletes through tenant_delete()

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

PostgreSQL lets a role that holds table-level UPDATE, DELETE, TRUNCATE or MAINTAIN take LOCK TABLE
in any mode (LockTableAclCheck, src/backend/commands/lockcmds.c); INSERT allows up to ROW EXCLUSIVE,
SELECT up to ACCESS SHARE. Holding UPDATE and DELETE on every tenant table, the app role could take
ACCESS EXCLUSIVE on executions and stall every organization. LOCK is not covered by event triggers,
and locking a view locks its base tables with the view owner's privileges, so neither can guard it.

So the app role loses table-level UPDATE and DELETE on organizations and the tenant tables:
* UPDATE is granted per column, on every column an UPDATE can set (generated ones cannot be set).
  The privilege check of LOCK looks at table-level privileges only, so column grants do not count.
  A revision adding a column must grant UPDATE on it.
* DELETE has no column form: hard deletes go through tenant_delete(table_name, match), SECURITY
  DEFINER, owned by the owner role, search_path pinned, EXECUTE for the app role only. It deletes
  only the current organization's rows (the tenant filter is applied by the function, the same
  expression as the policies), refuses when app.organization_id is unset, refuses tables without
  the tenant_isolation policy and an empty match, and takes the columns to match from the catalog
  (values passed as parameters, never spliced in). Its DELETE fires the audit trigger, which records
  the caller's app.user_id and SET ROLE target as before.
With SELECT and INSERT left at table level the app role's LOCK stops at ROW EXCLUSIVE, what its own
row writes take anyway.

Downgrade gives table-level UPDATE and DELETE back (and drops the function); the security check then
reports them, since the hole is open again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APP = "orchestrator_app"
APP_TABLES = (
    "organizations", "users", "roles", "role_memberships", "workflows", "workflow_versions", "executions",
    "marketplace_items",
)

CURRENT_ORG = "NULLIF(current_setting('app.organization_id', true), '')::uuid"

# Runs as the owner (policy owner_all), so the tenant filter is applied here, as in the search
# functions. A table qualifies when it carries the tenant_isolation policy (what the security check
# requires of organizations and every tenant table), so a future tenant table needs no change here.
TENANT_DELETE = f"""
CREATE FUNCTION tenant_delete(table_name text, match jsonb) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $function$
DECLARE
    organization uuid := {CURRENT_ORG};
    target oid;
    key text;
    value jsonb;
    column_type text;
    conditions text := '';
    deleted bigint;
BEGIN
    IF organization IS NULL THEN
        RAISE EXCEPTION 'tenant_delete: no organization is set (app.organization_id)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT c.oid INTO target FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relname = table_name AND c.relkind = 'r'
      AND EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation');
    IF target IS NULL THEN
        RAISE EXCEPTION 'tenant_delete: % is not a tenant table', table_name USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF jsonb_typeof(match) IS DISTINCT FROM 'object' OR match = '{{}}'::jsonb THEN
        RAISE EXCEPTION 'tenant_delete: match must be a non-empty object of column: value'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR key, value IN SELECT * FROM jsonb_each(match) LOOP
        SELECT format_type(a.atttypid, a.atttypmod) INTO column_type FROM pg_attribute a
        WHERE a.attrelid = target AND a.attname = key AND a.attnum > 0 AND NOT a.attisdropped;
        IF column_type IS NULL THEN
            RAISE EXCEPTION 'tenant_delete: % has no column %', table_name, key USING ERRCODE = 'undefined_column';
        END IF;
        IF jsonb_typeof(value) = 'array' THEN  -- any of the listed values
            conditions := conditions || format(
                ' AND t.%I = ANY (ARRAY(SELECT jsonb_array_elements_text($1 -> %L))::%s[])', key, key, column_type);
        ELSIF jsonb_typeof(value) = 'null' THEN
            RAISE EXCEPTION 'tenant_delete: % must not be null', key USING ERRCODE = 'invalid_parameter_value';
        ELSE
            conditions := conditions || format(' AND t.%I = ($1 ->> %L)::%s', key, key, column_type);
        END IF;
    END LOOP;
    EXECUTE format('DELETE FROM public.%I AS t WHERE t.%I = $2%s', table_name,
                   CASE WHEN table_name = 'organizations' THEN 'id' ELSE 'organization_id' END, conditions)
        USING match, organization;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$function$
"""


def _updatable_columns(table: str) -> str:
    """The table's columns an UPDATE can set (not the generated ones), quoted, in table order."""
    return op.get_bind().execute(sa.text(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = to_regclass(:table) AND attnum > 0 AND NOT attisdropped AND attgenerated = ''"
    ), {"table": f"public.{table}"}).scalar_one()


def upgrade() -> None:
    for table in APP_TABLES:
        op.execute(f"REVOKE UPDATE, DELETE ON {table} FROM {APP}")
        op.execute(f"GRANT UPDATE ({_updatable_columns(table)}) ON {table} TO {APP}")
    op.execute(TENANT_DELETE)
    op.execute("REVOKE ALL ON FUNCTION tenant_delete(text, jsonb) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION tenant_delete(text, jsonb) TO {APP}")


def downgrade() -> None:
    op.execute("DROP FUNCTION tenant_delete(text, jsonb)")
    for table in APP_TABLES:
        op.execute(f"REVOKE UPDATE ON {table} FROM {APP}")  # the column grants go with it
        op.execute(f"GRANT UPDATE, DELETE ON {table} TO {APP}")
