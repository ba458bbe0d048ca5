"""The tests' "database migrated to head" is a copy of a template the migrations built once
(tests/databases.py): the copy must be what running the migrations on a new database gives."""

from __future__ import annotations

import psycopg
import pytest

from orchestrator_data import urls
from orchestrator_data.postgres import catalog, migrator, security
from tests.databases import HEAD, migrated_copy

pytestmark = pytest.mark.integration

# what a migration leaves in a database, read from the catalog; names of objects, not their oids
CATALOG = {
    "relations": "SELECT c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relowner::regrole::text,"
                 " coalesce(c.relacl::text, '') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                 " WHERE n.nspname = 'public' ORDER BY 1",
    "columns": "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '')"
               " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
    "column grants": "SELECT table_name, column_name, grantee, privilege_type FROM information_schema.column_privileges"
                     " WHERE table_schema = 'public' ORDER BY 1, 2, 3, 4",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
                   " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "policies": "SELECT tablename, policyname, permissive, roles::text, cmd, coalesce(qual, ''),"
                " coalesce(with_check, '') FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2",
    "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger"
                " WHERE NOT tgisinternal ORDER BY 1, 2",
    "functions": "SELECT proname, pg_get_function_identity_arguments(oid), md5(prosrc), prosecdef,"
                 " proowner::regrole::text, coalesce(proacl::text, '') FROM pg_proc"
                 " WHERE pronamespace = 'public'::regnamespace ORDER BY 1, 2",
    "schema": "SELECT nspowner::regrole::text, coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'public'",
    "default privileges": "SELECT defaclrole::regrole::text, defaclobjtype, defaclacl::text FROM pg_default_acl"
                          " ORDER BY 1, 2, 3",
    "extensions": "SELECT extname, extversion FROM pg_extension ORDER BY 1",
    "ledger": "SELECT revision, direction, checksum, success, error FROM _migration_history ORDER BY id",
    "version": "SELECT version_num FROM alembic_version",
}


def _catalog(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(urls.libpq_url(url)) as conn:
        return {name: conn.execute(query).fetchall() for name, query in CATALOG.items()}


def test_a_copy_of_the_template_is_what_the_migrations_make(stack, database):
    migrator.upgrade(database)
    with migrated_copy(stack) as copy:
        assert migrator.status(copy).current == HEAD
        assert security.check_security(copy).ok
        assert catalog.check_drift(copy) == []
        migrated, copied = _catalog(database), _catalog(copy)
    for name in CATALOG:
        assert copied[name] == migrated[name], name
    assert migrated["relations"] and migrated["policies"] and migrated["ledger"]
