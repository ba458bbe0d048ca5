"""Scoping a transaction to one tenant, the way the product must talk to the database.

Row-level security keys every tenant table on `app.organization_id`. It is set here with
set_config(..., is_local => true) — i.e. SET LOCAL — inside a transaction, so it ends with that
transaction and a pooled connection never carries one tenant into the next request. The
organization id is checked to be a UUID before it is sent (the database would refuse anything else
anyway: the policies cast it, and a cast error fails the statement rather than leaking rows).

The app role has no table-level UPDATE or DELETE (either would let it LOCK a shared table in any
mode): it updates through column grants as usual and hard-deletes through `delete_rows`, i.e. the
database's tenant_delete() (revision 0005).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from orchestrator_data.errors import BadInput, OperationFailed
from orchestrator_data.postgres.roles import APP_ROLE

DELETE_FUNCTION = "tenant_delete"
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class InvalidTenant(BadInput, ValueError):
    """An organization or user id that is not a UUID; the message does not echo the value."""


class TenancyError(OperationFailed, RuntimeError):
    """The tenant scope was requested where it cannot hold (e.g. inside an open transaction)."""


def as_uuid(value: uuid.UUID | str, what: str = "organization id") -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise InvalidTenant(f"{what} must be a UUID, got {type(value).__name__}")
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise InvalidTenant(f"{what} is not a UUID") from None


@contextmanager
def tenant_transaction(
    bind: sa.Engine | sa.Connection,
    organization_id: uuid.UUID | str | None,
    user_id: uuid.UUID | str | None = None,
    *,
    role: str | None = APP_ROLE,
) -> Iterator[sa.Connection]:
    """A transaction in which the database sees `organization_id` (and `user_id`, the actor of the
    audit trail) and, unless role=None, runs as `role` (SET LOCAL ROLE). Commits on success, rolls
    back on error; the settings and the role end with it. organization_id=None sets no tenant:
    every tenant table then shows no row and refuses every write (fail closed)."""
    organization = as_uuid(organization_id) if organization_id is not None else None
    user = as_uuid(user_id, "user id") if user_id is not None else None
    if role is not None and not _ROLE_NAME.match(role):
        raise TenancyError("role must be a plain lower-case role name")
    if isinstance(bind, sa.Engine):
        with bind.connect() as conn, conn.begin():
            _scope(conn, organization, user, role)
            yield conn
        return
    if bind.in_transaction():
        raise TenancyError("tenant_transaction needs a connection without an open transaction: "
                           "settings made with SET LOCAL would leak into the rest of that transaction")
    with bind.begin():
        _scope(bind, organization, user, role)
        yield bind


def _scope(conn: sa.Connection, organization: uuid.UUID | None, user: uuid.UUID | None, role: str | None) -> None:
    if role is not None:
        conn.execute(sa.text(f'SET LOCAL ROLE "{role}"'))
    conn.execute(
        sa.text("SELECT set_config('app.organization_id', :organization, true), set_config('app.user_id', :user, true)"),
        {"organization": str(organization) if organization else "", "user": str(user) if user else ""},
    )


def current_tenant(conn: sa.Connection) -> uuid.UUID | None:
    """The organization the current transaction is scoped to, or None."""
    value = conn.execute(sa.text("SELECT NULLIF(current_setting('app.organization_id', true), '')")).scalar_one()
    return uuid.UUID(value) if value else None


def delete_rows(conn: sa.Connection, table: str, **match: object) -> int:
    """Hard-delete the current organization's rows of `table` whose columns equal `match` (a list or
    tuple matches any of its values); returns how many were deleted. Runs the database's
    tenant_delete(), which refuses when no organization is set and deletes nothing of another one.
    Each deleted row (and each row its cascades reach) is audited as usual, with this transaction's
    actor and role. Example: delete_rows(conn, "executions", id=[first, second])."""
    if not match:
        raise ValueError("delete_rows needs at least one column to match")
    document = json.dumps({column: list(value) if isinstance(value, (tuple, set, frozenset)) else value
                           for column, value in match.items()}, default=str)  # UUIDs, datetimes as text
    return conn.execute(sa.text(f"SELECT {DELETE_FUNCTION}(:table, CAST(:match AS jsonb))"),
                        {"table": table, "match": document}).scalar_one()
