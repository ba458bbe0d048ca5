"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Runs in its own transaction, as orchestrator_owner once the security revision (0002) is in. A new
tenant table needs, in this revision: ENABLE + FORCE row-level security, the tenant_isolation /
owner_all / readonly_all policies, grants to orchestrator_app (SELECT, INSERT, UPDATE per column:
never table-level UPDATE/DELETE, which would let it LOCK the table) and orchestrator_readonly, and
the audit trigger; a new column needs its own GRANT UPDATE (column); a reference to a tenant row is a
composite key on (organization_id, column) — see docs/postgres-schema.md. The security check after
the migration fails otherwise.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
