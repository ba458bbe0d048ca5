"""retention: the one owner function that may purge old audit rows

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

audit_logs is append-only (audit_logs_append_only() refuses UPDATE, DELETE and TRUNCATE to anyone
not in orchestrator_owner). Retention must still drop audit rows past their policy's horizon, so
this adds a narrowly scoped SECURITY DEFINER function instead of handing out DELETE:

    retention_purge_audit_logs(older_than timestamptz, max_rows integer) RETURNS SETOF bigint

* deletes at most `max_rows` rows (1..100000: one bounded batch, one short transaction per call),
  and only rows with `occurred_at < older_than`;
* refuses a horizon less than one day old (22023): a purge of yesterday's trail is a mistake;
* never deletes a row the search sync has not consumed yet: it keeps every row whose transaction_id
  is at or above the lowest watermark in search_sync_state. Watermarks only grow, so a row below the
  lowest one is never read again by any incremental sync; no sync lock has to be taken (and a
  purge never waits for, nor blocks, a running sync);
* rows are locked with SKIP LOCKED, so a purge never waits on another purge;
* returns the ids it deleted, so the caller removes exactly those documents from the audit index.
EXECUTE is revoked from PUBLIC: only the owner and its members (the migrating login) may call it.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PURGE_AUDIT = """
CREATE FUNCTION retention_purge_audit_logs(older_than timestamptz, max_rows integer) RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $function$
DECLARE
    keep_from bigint;
BEGIN
    IF older_than IS NULL OR max_rows IS NULL OR max_rows < 1 OR max_rows > 100000 THEN
        RAISE EXCEPTION 'retention_purge_audit_logs: older_than must be set and max_rows between 1 and 100000'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF older_than > now() - interval '1 day' THEN
        RAISE EXCEPTION 'retention_purge_audit_logs: refusing to purge audit rows younger than one day'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT min(watermark) INTO keep_from FROM public.search_sync_state;
    RETURN QUERY WITH gone AS (DELETE FROM public.audit_logs a
    WHERE a.id IN (SELECT d.id FROM public.audit_logs d
                   WHERE d.occurred_at < older_than AND (keep_from IS NULL OR d.transaction_id < keep_from)
                   ORDER BY d.id LIMIT max_rows FOR UPDATE SKIP LOCKED)
        RETURNING a.id)
    SELECT gone.id FROM gone;
END
$function$
"""


def upgrade() -> None:
    op.execute(PURGE_AUDIT)
    op.execute("REVOKE ALL ON FUNCTION retention_purge_audit_logs(timestamptz, integer) FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION retention_purge_audit_logs(timestamptz, integer)")
