"""security: owner/app/readonly roles, forced row-level security, audit triggers, immutable versions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Roles (cluster-wide, so created idempotently and never dropped by downgrade — other databases of
the same cluster may use them):
  orchestrator_owner     NOLOGIN; owns every object. The migrating login is made a member, and the
                         migrator runs later revisions under SET LOCAL ROLE orchestrator_owner.
  orchestrator_app       NOLOGIN, NOBYPASSRLS, owns nothing; the product's login is granted it. Reads
                         and writes only its organization's rows (app.organization_id), reads its
                         organization's audit rows, never writes them.
  orchestrator_readonly  NOLOGIN; SELECT everywhere, every tenant (backups, reporting).

Works as a superuser and as a non-superuser with CREATEROLE that owns the database (Neon): the
roles are created by that login (which then holds ADMIN on them), it grants itself membership in
orchestrator_owner, hands its tables over, then continues as orchestrator_owner.

The tenant is read with current_setting('app.organization_id', true): unset (NULL) or '' (what a
pooled connection shows after a SET LOCAL ended) match no row; a value that is not a UUID makes the
statement fail. `(SELECT ...)` makes it one InitPlan per statement instead of a call per row.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OWNER = "orchestrator_owner"
APP = "orchestrator_app"
READONLY = "orchestrator_readonly"

CURRENT_ORG = "(SELECT NULLIF(current_setting('app.organization_id', true), '')::uuid)"

TENANT_TABLES = (
    "users", "roles", "role_memberships", "workflows", "workflow_versions", "executions", "marketplace_items",
)
RLS_TABLES = ("organizations", *TENANT_TABLES, "audit_logs")
# the audited tables and their primary-key columns (record_id of the audit row)
AUDITED = {
    "organizations": ("id",), "users": ("id",), "roles": ("id",), "role_memberships": ("user_id", "role_id"),
    "workflows": ("id",), "workflow_versions": ("id",), "executions": ("id",), "marketplace_items": ("id",),
}
# everything the owner role must own, the migration bookkeeping included
OWNED_TABLES = (*RLS_TABLES, "_migration_history", "alembic_version")
FUNCTIONS = (
    "audit_row_change()", "audit_logs_append_only()", "workflow_versions_immutable()",
    "search_workflows(text, integer)", "search_marketplace_items(text, integer)",
)

CREATE_ROLES = f"""
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['{OWNER}', '{APP}', '{READONLY}'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by the migration of another database in this cluster
            END;
        END IF;
    END LOOP;
END $$
"""

JOIN_OWNER = f"""
DO $$
BEGIN
    IF NOT (pg_catalog.pg_has_role(session_user, '{OWNER}', 'SET')
            AND pg_catalog.pg_has_role(session_user, '{OWNER}', 'USAGE')) THEN
        BEGIN
            EXECUTE format('GRANT {OWNER} TO %I WITH INHERIT TRUE, SET TRUE', session_user);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'the migrating role % cannot make itself a member of {OWNER}', session_user
                USING HINT = format('as a superuser or an admin of {OWNER}: GRANT {OWNER} TO %I', session_user);
        END;
    END IF;
END $$
"""

AUDIT_FUNCTION = """
CREATE FUNCTION audit_row_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    old_row jsonb;
    new_row jsonb;
    row_data jsonb;
    key_column text;
    key_values text[] := ARRAY[]::text[];
    -- SECURITY DEFINER makes current_user the owner; the role the caller switched to is in 'role'
    active_role text := current_setting('role');
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_row := to_jsonb(OLD) - 'search_vector';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_row := to_jsonb(NEW) - 'search_vector';
    END IF;
    row_data := coalesce(new_row, old_row);
    FOREACH key_column IN ARRAY TG_ARGV LOOP
        key_values := key_values || (row_data ->> key_column);
    END LOOP;
    INSERT INTO public.audit_logs (organization_id, actor_id, actor_role, login_role, action, table_name,
                                   record_id, old_values, new_values, transaction_id)
    VALUES (
        (CASE WHEN TG_TABLE_NAME = 'organizations' THEN row_data ->> 'id'
              ELSE row_data ->> 'organization_id' END)::uuid,
        NULLIF(current_setting('app.user_id', true), '')::uuid,
        CASE WHEN active_role IS NULL OR active_role = 'none' THEN session_user::text ELSE active_role END,
        session_user,
        TG_OP,
        TG_TABLE_NAME,
        array_to_string(key_values, ','),
        old_row,
        new_row,
        txid_current()
    );
    RETURN NULL;
END $$
"""

APPEND_ONLY_FUNCTION = f"""
CREATE FUNCTION audit_logs_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    -- the owner (and its members: the migrating login, `reset`, `seed clean`) may remove audit rows
    IF pg_has_role(current_user, '{OWNER}', 'MEMBER') THEN
        IF TG_OP = 'UPDATE' THEN
            RETURN NEW;
        END IF;
        RETURN OLD;  -- the row to delete; ignored for the statement-level TRUNCATE trigger
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only: % by % refused', TG_OP, current_user
        USING ERRCODE = 'insufficient_privilege';
END $$
"""

IMMUTABLE_FUNCTION = """
CREATE FUNCTION workflow_versions_immutable() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    -- the one change allowed: ON DELETE SET NULL of created_by when the author is erased
    IF NEW.created_by IS NULL AND (to_jsonb(NEW) - 'created_by') = (to_jsonb(OLD) - 'created_by') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'workflow_versions rows are immutable (workflow %, version %)', OLD.workflow_id, OLD.version
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'create a new version instead';
END $$
"""

# Full-text search cannot use the GIN indexes through row-level security: `@@` is not leakproof,
# so PostgreSQL must apply the policy before it and falls back to a scan of the tenant's rows.
# These functions run as the owner (policy owner_all) and apply the tenant filter themselves —
# the same expression as the policies — so the product's search uses the index and still sees
# only its organization (workflows) or the published catalogue (marketplace). EXECUTE plans each
# call with the actual search terms: a rare word takes the GIN index, a word in every row of the
# tenant its organization index.
SEARCH_WORKFLOWS = f"""
CREATE FUNCTION search_workflows(query text, max_rows integer DEFAULT 50) RETURNS SETOF workflows
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $function$
BEGIN
    RETURN QUERY EXECUTE $sql$
        SELECT w.*
        FROM public.workflows AS w
        WHERE w.organization_id = {CURRENT_ORG}
          AND w.deleted_at IS NULL
          AND w.search_vector @@ websearch_to_tsquery('english', $1)
        ORDER BY ts_rank(w.search_vector, websearch_to_tsquery('english', $1)) DESC, w.id
        LIMIT least(greatest($2, 0), 500)
    $sql$ USING query, max_rows;
END
$function$
"""

SEARCH_MARKETPLACE = f"""
CREATE FUNCTION search_marketplace_items(query text, max_rows integer DEFAULT 50)
RETURNS SETOF marketplace_items
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $function$
BEGIN
    IF {CURRENT_ORG} IS NULL THEN
        RETURN;  -- no tenant, no catalogue: fail closed like the policies
    END IF;
    RETURN QUERY EXECUTE $sql$
        SELECT m.*
        FROM public.marketplace_items AS m
        WHERE m.status = 'published'
          AND m.deleted_at IS NULL
          AND m.search_vector @@ websearch_to_tsquery('english', $1)
        ORDER BY ts_rank(m.search_vector, websearch_to_tsquery('english', $1)) DESC, m.downloads DESC, m.id
        LIMIT least(greatest($2, 0), 500)
    $sql$ USING query, max_rows;
END
$function$
"""


def upgrade() -> None:
    # role, schema and ownership changes need the login itself, not orchestrator_owner
    op.execute("SET LOCAL ROLE NONE")
    op.execute(CREATE_ROLES)
    op.execute(JOIN_OWNER)
    op.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {OWNER}")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP}, {READONLY}")
    for table in OWNED_TABLES:
        op.execute(f"ALTER TABLE IF EXISTS {table} OWNER TO {OWNER}")

    # from here on everything is created by, and belongs to, the owner role
    op.execute(f"SET LOCAL ROLE {OWNER}")
    for sql in (AUDIT_FUNCTION, APPEND_ONLY_FUNCTION, IMMUTABLE_FUNCTION, SEARCH_WORKFLOWS, SEARCH_MARKETPLACE):
        op.execute(sql)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION search_workflows(text, integer), "
               f"search_marketplace_items(text, integer) TO {APP}")

    for table in RLS_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        # explicit, so that data migrations and the audit trigger (both run as the owner) see every row
        op.execute(f"CREATE POLICY owner_all ON {table} FOR ALL TO {OWNER} USING (true) WITH CHECK (true)")
        op.execute(f"CREATE POLICY readonly_all ON {table} FOR SELECT TO {READONLY} USING (true)")
    op.execute(f"CREATE POLICY tenant_isolation ON organizations FOR ALL TO {APP} "
               f"USING (id = {CURRENT_ORG}) WITH CHECK (id = {CURRENT_ORG})")
    for table in TENANT_TABLES:
        op.execute(f"CREATE POLICY tenant_isolation ON {table} FOR ALL TO {APP} "
                   f"USING (organization_id = {CURRENT_ORG}) WITH CHECK (organization_id = {CURRENT_ORG})")
    op.execute(f"CREATE POLICY published_read ON marketplace_items FOR SELECT TO {APP} "
               f"USING (status = 'published' AND deleted_at IS NULL AND {CURRENT_ORG} IS NOT NULL)")
    op.execute(f"CREATE POLICY tenant_read ON audit_logs FOR SELECT TO {APP} USING (organization_id = {CURRENT_ORG})")

    # no TRUNCATE for the app: TRUNCATE ignores row-level security
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(('organizations', *TENANT_TABLES))} TO {APP}")
    op.execute(f"GRANT SELECT ON audit_logs TO {APP}")
    op.execute(f"GRANT SELECT ON {', '.join(OWNED_TABLES)} TO {READONLY}")

    for table, key in AUDITED.items():
        arguments = ", ".join(f"'{column}'" for column in key)
        op.execute(f"CREATE TRIGGER audit_row_change AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION audit_row_change({arguments})")
    op.execute("CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs "
               "FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only()")
    op.execute("CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs "
               "FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only()")
    op.execute("CREATE TRIGGER workflow_versions_immutable BEFORE UPDATE ON workflow_versions "
               "FOR EACH ROW EXECUTE FUNCTION workflow_versions_immutable()")


def downgrade() -> None:
    op.execute(f"SET LOCAL ROLE {OWNER}")
    for table in AUDITED:
        op.execute(f"DROP TRIGGER IF EXISTS audit_row_change ON {table}")
    op.execute("DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs")
    op.execute("DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs")
    op.execute("DROP TRIGGER IF EXISTS workflow_versions_immutable ON workflow_versions")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    for table in RLS_TABLES:
        for policy in ("owner_all", "readonly_all", "tenant_isolation", "published_read", "tenant_read"):
            op.execute(f"DROP POLICY IF EXISTS {policy} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute(f"REVOKE ALL ON {', '.join(OWNED_TABLES)} FROM {APP}, {READONLY}")

    # back to the state 0001 left: the migrating login owns the tables; the roles stay (cluster-wide)
    op.execute("SET LOCAL ROLE NONE")
    for table in OWNED_TABLES:
        op.execute(f"ALTER TABLE IF EXISTS {table} OWNER TO SESSION_USER")
    op.execute(f"REVOKE ALL ON SCHEMA public FROM {OWNER}, {APP}, {READONLY}")
