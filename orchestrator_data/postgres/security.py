"""The security check: is tenant isolation in place as the revisions built it?

Every tenant table (and organizations, audit_logs) must have row-level security enabled and forced
with exactly the expected policies, every audited table its audit trigger, the audit log its
append-only guard, workflow_versions its immutability trigger, the search functions must be the
definer functions the revisions wrote, and the roles must be as the model says (the app role
bypasses nothing and owns nothing). The migrator runs it after every upgrade and rollback; the
`check_postgres_schema_security` asset check runs it on demand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import sqlalchemy as sa

from orchestrator_data.postgres import models
from orchestrator_data.postgres.client import Bind, connection_for
from orchestrator_data.postgres.roles import APP_ROLE, OWNER_ROLE, READONLY_ROLE, ROLES, SCHEMA
from orchestrator_data.postgres.tenancy import DELETE_FUNCTION

RLS_TABLES = ("organizations", *models.TENANT_TABLES, "audit_logs")
AUDIT_FUNCTION = "audit_row_change"
APPEND_ONLY_FUNCTION = "audit_logs_append_only"
IMMUTABLE_FUNCTION = "workflow_versions_immutable"
SEARCH_FUNCTIONS = ("search_workflows", "search_marketplace_items")
# SECURITY DEFINER functions the app role calls: they bypass the policies by design
ERASE_FUNCTION = "gdpr_erase_user"  # revision 0008: owner-only, it rewrites audit rows
DEFINER_FUNCTIONS = (*SEARCH_FUNCTIONS, DELETE_FUNCTION, ERASE_FUNCTION)
# the owner's own SECURITY DEFINER functions (revision 0009 on): no one but the owner's members may run them
OWNER_ONLY_FUNCTIONS = ("retention_purge_audit_logs",)
KNOWN_FUNCTIONS = (AUDIT_FUNCTION, APPEND_ONLY_FUNCTION, IMMUTABLE_FUNCTION, *DEFINER_FUNCTIONS, "gdpr_redact_jsonb",
                   *OWNER_ONLY_FUNCTIONS)
# policies every RLS table must carry, and those a given table may carry besides
REQUIRED_POLICIES = {"owner_all": ("ALL", OWNER_ROLE), "readonly_all": ("SELECT", READONLY_ROLE)}
TENANT_POLICY = {"audit_logs": ("tenant_read", "SELECT")}  # default: ("tenant_isolation", "ALL")
EXTRA_POLICIES = {"marketplace_items": {"published_read": ("SELECT", APP_ROLE)}}


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


def check_security(bind: Bind) -> SecurityReport:
    """Whether every tenant table (and organizations, audit_logs) has row-level security enabled
    and forced with exactly the expected policies, every audited table its audit trigger, the audit
    log its append-only guard, workflow_versions its immutability trigger, and whether the roles are
    as the model says (the app role bypasses nothing and owns nothing)."""
    with connection_for(bind) as conn:
        report = inspect_security(conn)
        conn.rollback()
    return report


_TG_ROW, _TG_BEFORE, _TG_INSERT, _TG_DELETE, _TG_UPDATE, _TG_TRUNCATE = 1, 2, 4, 8, 16, 32


def inspect_security(conn: sa.Connection) -> SecurityReport:
    """check_security on an open connection (the migrator's, inside its run)."""
    problems: list[str] = []
    roles = {r.rolname: r for r in conn.execute(sa.text(
        "SELECT rolname, rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = ANY(:names)"
    ), {"names": list(ROLES)})}
    for name in ROLES:
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
    if ERASE_FUNCTION in definers and APP_ROLE in roles and conn.execute(sa.text(
        "SELECT has_function_privilege(:role, 'gdpr_erase_user(uuid, text, timestamptz)', 'EXECUTE')"
    ), {"role": APP_ROLE}).scalar_one():  # it rewrites audit rows: the owner's members only
        problems.append(f"role {APP_ROLE} may execute {ERASE_FUNCTION}")

    # checked when present (a database rolled back below 0009 has none): it deletes audit rows, so it must be
    # exactly ours and closed to PUBLIC and the app role
    for fn in conn.execute(sa.text(
        "SELECT p.proname, p.prosecdef, pg_get_userbyid(p.proowner) AS owner, p.proconfig, "
        "has_function_privilege('public', p.oid, 'EXECUTE') AS public_may, "
        "(SELECT oid FROM pg_roles WHERE rolname = :app) IS NOT NULL "
        "  AND has_function_privilege(:app, p.oid, 'EXECUTE') AS app_may "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = :schema AND p.proname = ANY(:names)"
    ), {"schema": SCHEMA, "names": list(OWNER_ONLY_FUNCTIONS), "app": APP_ROLE}):
        if not fn.prosecdef or fn.owner != OWNER_ROLE or not any(
                (c or "").startswith("search_path=") for c in (fn.proconfig or [])):
            problems.append(f"function {fn.proname} must be SECURITY DEFINER, owned by {OWNER_ROLE}, with a fixed search_path")
        if fn.public_may or fn.app_may:
            problems.append(f"function {fn.proname} must not be executable by PUBLIC or {APP_ROLE}")

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
