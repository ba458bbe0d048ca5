"""alert audit and read-only backups: audit_logs.action also allows 'ALERT'; the read-only role
can run pg_dump

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Alerts (a failed Dagster run, a stale backup) are recorded in the audit trail as rows with
action 'ALERT', table_name '_dagster_run', record_id the run id, new_values the alert. They are
written by the owner role (orchestrator_data.alerts), never by the app role, which still cannot
insert into audit_logs. The constraint keeps the name 0001 gave it: op.create_table applied
models.metadata's naming convention on top of the explicit name, so it is really
ck_audit_logs_ck_audit_logs_action — found in pg_constraint rather than hard-coded, and kept, so
models (name="action") and every database still agree.

Backups run as a login in orchestrator_readonly (docs/backups.md). 0002 granted that role SELECT on
the application tables only, but pg_dump also reads the ledger, alembic_version and the identity
sequences ("failed to get data for sequence"); this revision grants those too.

Downgrade refuses while ALERT rows exist instead of deleting them: audit_logs is append-only (its
trigger refuses DELETE for everyone) and silently dropping part of the audit trail to make a
rollback pass is the wrong default. An operator who really wants to go back archives and removes
those rows deliberately first.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WITH_ALERT = "action IN ('INSERT', 'UPDATE', 'DELETE', 'ALERT')"
WITHOUT_ALERT = "action IN ('INSERT', 'UPDATE', 'DELETE')"


def _replace_check(expression: str) -> None:
    """Swap the CHECK on audit_logs.action for `expression`, keeping the constraint's name."""
    op.execute(f"""
DO $$
DECLARE
    name text;
BEGIN
    SELECT c.conname INTO STRICT name FROM pg_constraint c
    WHERE c.conrelid = 'public.audit_logs'::regclass AND c.contype = 'c'
      AND pg_get_constraintdef(c.oid) LIKE '%action%';
    EXECUTE format('ALTER TABLE public.audit_logs DROP CONSTRAINT %I, ADD CONSTRAINT %I CHECK ({expression.replace("'", "''")})',
                   name, name);
END $$""")


READONLY = "orchestrator_readonly"
READONLY_EXTRAS = (
    f"GRANT SELECT ON _migration_history, alembic_version TO {READONLY}",
    f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {READONLY}",
)


def upgrade() -> None:
    _replace_check(WITH_ALERT)
    # alembic_version belongs to the migrating login, not the owner role: grant as the login
    op.execute("SET LOCAL ROLE NONE")
    for statement in READONLY_EXTRAS:
        op.execute(statement)


def downgrade() -> None:
    op.execute(
        "DO $$ DECLARE n bigint; BEGIN "
        "SELECT count(*) INTO n FROM audit_logs WHERE action = 'ALERT'; "
        "IF n > 0 THEN RAISE EXCEPTION 'audit_logs holds % ALERT row(s); revision 0003 cannot be rolled back "
        "while they exist (audit_logs is append-only: archive and remove them deliberately first)', n; "
        "END IF; END $$"
    )
    _replace_check(WITHOUT_ALERT)
    op.execute("SET LOCAL ROLE NONE")
    op.execute(f"REVOKE SELECT ON _migration_history, alembic_version FROM {READONLY}")
    op.execute(f"REVOKE SELECT ON ALL SEQUENCES IN SCHEMA public FROM {READONLY}")
