"""The three database roles of the data layer, defined once, and acting as the owner.

    orchestrator_owner     owns every table, function and sequence; migrations run as it
    orchestrator_app       the product's role: the current organization's rows only (row-level security)
    orchestrator_readonly  backups and reporting: reads everything, writes nothing

The revision files keep their own literals on purpose: an applied revision is checksummed and must
never change, so they cannot follow a rename here (revision 0002 creates the roles).
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA = "public"
OWNER_ROLE = "orchestrator_owner"
APP_ROLE = "orchestrator_app"
READONLY_ROLE = "orchestrator_readonly"
ROLES = (OWNER_ROLE, APP_ROLE, READONLY_ROLE)


def owner_usable(conn: sa.Connection) -> bool:
    """Whether statements can run as the owner role: it exists, may create in the schema (revision
    0002 granted that) and the login may SET ROLE to it. Before that, they run as the login."""
    return bool(conn.execute(sa.text(
        "SELECT coalesce((SELECT has_schema_privilege(r.oid, :schema, 'CREATE') "
        "                        AND pg_has_role(session_user, r.oid, 'SET') "
        "                 FROM pg_roles r WHERE r.rolname = :owner), false)"
    ), {"schema": SCHEMA, "owner": OWNER_ROLE}).scalar_one())


def act_as_owner(conn: sa.Connection) -> bool:
    """In the open transaction, SET LOCAL ROLE to the owner role when the login may (see
    owner_usable); returns whether it did. Migrations and alert audit rows both write as the owner."""
    if not owner_usable(conn):
        return False
    conn.execute(sa.text(f"SET LOCAL ROLE {OWNER_ROLE}"))
    return True
