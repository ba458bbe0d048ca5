"""tenant-consistent foreign keys everywhere: no row can point into another organization

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Foreign keys bypass row-level security. 0001 made workflow_id, user_id and role_id tenant-consistent
((organization_id, x) → parent (organization_id, id)) but left five references checking only that
the id exists somewhere: workflows.owner_id, workflow_versions.created_by, executions.triggered_by,
role_memberships.granted_by (→ users) and marketplace_items.workflow_id (→ workflows). A tenant
could point them at another organization's row — learning which of its ids exist (a random UUID
failed, a foreign one passed) — and that organization's delete then wrote, through ON DELETE SET
NULL, into the first tenant's rows and audit trail. Each becomes a composite key on
(organization_id, column) with `ON DELETE SET NULL (column)` (PostgreSQL 15+), which clears only
the reference, never organization_id.

The single-column keys on workflow_id, user_id and role_id beside the tenant-consistent ones go too:
they are implied by them, and with both in place which constraint a violation names depends on
trigger order (creation order, or name order after a restore), so the error could again tell a
foreign id from an unknown one. For the same reason workflow_versions' UNIQUE (workflow_id, version)
becomes (organization_id, workflow_id, version): checked before any foreign key, it answered
"duplicate" for another organization's workflow and "not present" for an unknown one. (A row's own
primary key is still unique across organizations; ids are random UUIDs — docs/postgres-schema.md.)

Existing violations are REPAIRED, not refused: a reference into another organization is cleared
(set NULL) — what the SET NULL action does when the referenced row goes — before the new keys are
added. Nothing the owning organization could legitimately use is lost (it could never read the
other tenant's row), the upgrade cannot be blocked by rows a tenant planted, and every clearing is
an UPDATE row in audit_logs (actor_role orchestrator_owner, old_values holding the old reference)
in the organization of the row that held it; the counts are logged as a warning. Downgrade restores
the 0001 keys, not the cleared references.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = logging.getLogger("orchestrator_data.postgres.migrations")

# the nullable references made tenant-consistent: new key → (table, column, parent, the 0001 key it replaces)
TENANT_REFERENCES = {
    "fk_workflows_tenant_owner": ("workflows", "owner_id", "users", "fk_workflows_owner_id_users"),
    "fk_workflow_versions_tenant_created_by": (
        "workflow_versions", "created_by", "users", "fk_workflow_versions_created_by_users"),
    "fk_executions_tenant_triggered_by": ("executions", "triggered_by", "users", "fk_executions_triggered_by_users"),
    "fk_role_memberships_tenant_granted_by": (
        "role_memberships", "granted_by", "users", "fk_role_memberships_granted_by_users"),
    "fk_marketplace_items_tenant_workflow": (
        "marketplace_items", "workflow_id", "workflows", "fk_marketplace_items_workflow_id_workflows"),
}
# 0001's single-column keys already implied by a tenant-consistent one: key → (table, column, parent)
IMPLIED_KEYS = {
    "fk_role_memberships_user_id_users": ("role_memberships", "user_id", "users"),
    "fk_role_memberships_role_id_roles": ("role_memberships", "role_id", "roles"),
    "fk_executions_workflow_id_workflows": ("executions", "workflow_id", "workflows"),
    "fk_workflow_versions_workflow_id_workflows": ("workflow_versions", "workflow_id", "workflows"),
}
VERSION_UNIQUE_BEFORE = "uq_workflow_versions_workflow_id_version"
VERSION_UNIQUE = "uq_workflow_versions_organization_id_workflow_id_version"


def _add_key(name: str, table: str, columns: str, parent: str, parent_columns: str, ondelete: str) -> None:
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({columns}) "
               f"REFERENCES {parent} ({parent_columns}) ON DELETE {ondelete}")


def upgrade() -> None:
    bind = op.get_bind()
    for name, (table, column, parent, old) in TENANT_REFERENCES.items():
        # runs as the owner (policy owner_all: every organization); the audit trigger records each clearing
        cleared = bind.execute(sa.text(
            f"UPDATE {table} AS child SET {column} = NULL WHERE child.{column} IS NOT NULL AND NOT EXISTS "
            f"(SELECT FROM {parent} AS p WHERE p.id = child.{column} AND p.organization_id = child.organization_id)"
        )).rowcount
        if cleared:
            log.warning("0004: cleared %d reference(s) from %s.%s into another organization (see audit_logs)",
                        cleared, table, column)
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {old}")
        _add_key(name, table, f"organization_id, {column}", parent, "organization_id, id", f"SET NULL ({column})")
    for name, (table, _, _) in IMPLIED_KEYS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    op.execute(f"ALTER TABLE workflow_versions DROP CONSTRAINT {VERSION_UNIQUE_BEFORE}, "
               f"ADD CONSTRAINT {VERSION_UNIQUE} UNIQUE (organization_id, workflow_id, version)")


def downgrade() -> None:
    op.execute(f"ALTER TABLE workflow_versions DROP CONSTRAINT {VERSION_UNIQUE}, "
               f"ADD CONSTRAINT {VERSION_UNIQUE_BEFORE} UNIQUE (workflow_id, version)")
    for name, (table, column, parent) in IMPLIED_KEYS.items():
        _add_key(name, table, column, parent, "id", "CASCADE")
    for name, (table, column, parent, old) in TENANT_REFERENCES.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        _add_key(old, table, column, parent, "id", "SET NULL")
