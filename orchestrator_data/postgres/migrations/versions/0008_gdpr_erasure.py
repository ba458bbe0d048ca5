"""GDPR: the erasure ledger, the owner's erasure function, EXPORT and ERASURE audit actions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

* `gdpr_erasures`: one row per erased user: the user's id, when, and who asked (an operator login,
  never the person's data). Backups keep erased data until retention drops them, so a restore
  re-applies this ledger (orchestrator_data/gdpr/erase.py: reapply_ledger). Owner-written; the
  read-only role may read it (backups' pg_dump). No app grants: the product never sees it.
* `gdpr_redact_jsonb(doc, needles)`: the document with every whole-word occurrence of each needle
  inside its string values replaced by '[erased]' (case-insensitive, keys and structure kept).
  Owner-only. The needles are the user's e-mail and name now and every earlier one their own audit
  rows hold; in other rows than their own `users` rows (redacted by key) only needles of 3 or more
  characters count, so a two-letter name does not shred everyone's trail.
* `gdpr_erase_user(target, erased_by, reapply_at)`: SECURITY DEFINER, owned by the owner role,
  search_path pinned, EXECUTE for nobody but the owner (its members: the migrating login). In one
  transaction it deletes the user row (memberships cascade; owner_id, created_by, triggered_by and
  granted_by are cleared by their ON DELETE SET NULL keys, each audited as usual), then redacts the
  person's e-mail and name inside audit rows' old/new values (the only UPDATE of audit_logs there
  is: audit_logs_append_only() lets the owner through, nobody else), writes one ERASURE audit row
  naming no personal data and the ledger row. Returns the rows touched per table as JSON. Unknown
  user: SQLSTATE P0002; already erased: OD409. With reapply_at (after a restore) a missing user is
  not an error and the ledger row keeps the original time.
* the CHECK on audit_logs.action also allows EXPORT (who exported whom, when: never the content) and ERASURE.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

READONLY = "orchestrator_readonly"

REDACT_JSONB = r"""
CREATE FUNCTION gdpr_redact_jsonb(doc jsonb, needles text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, public AS $function$
DECLARE
    value text;
    needle text;
BEGIN
    CASE jsonb_typeof(doc)
    WHEN 'object' THEN
        RETURN (SELECT coalesce(jsonb_object_agg(k, gdpr_redact_jsonb(v, needles)), '{}'::jsonb)
                FROM jsonb_each(doc) AS e(k, v));
    WHEN 'array' THEN
        RETURN (SELECT coalesce(jsonb_agg(gdpr_redact_jsonb(v, needles) ORDER BY i), '[]'::jsonb)
                FROM jsonb_array_elements(doc) WITH ORDINALITY AS a(v, i));
    WHEN 'string' THEN
        value := doc #>> '{}';
        -- longest first: a name inside the e-mail must not break the e-mail's match
        FOREACH needle IN ARRAY coalesce((SELECT array_agg(n ORDER BY length(n) DESC) FROM unnest(needles) AS n),
                                         '{}') LOOP
            CONTINUE WHEN coalesce(needle, '') = '';
            -- every character but letters, digits and spaces escaped: the needle is matched literally,
            -- and only as a whole word ("Al" must not turn "Alpha" into "[erased]pha")
            value := regexp_replace(value, '(?<![[:alnum:]])'
                                           || regexp_replace(needle, '([^[:alnum:][:space:]])', '\\\1', 'g')
                                           || '(?![[:alnum:]])', '[erased]', 'gi');
        END LOOP;
        RETURN to_jsonb(value);
    ELSE
        RETURN doc;
    END CASE;
END
$function$
"""

ERASE_USER = r"""
CREATE FUNCTION gdpr_erase_user(target uuid, erased_by text, reapply_at timestamptz DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $function$
DECLARE
    person users%ROWTYPE;
    needles text[];
    wide_needles text[];
    erased_fields constant jsonb := '{"email": "[erased]", "display_name": "[erased]"}';
    counts jsonb;
    redacted bigint;
BEGIN
    IF target IS NULL OR coalesce(erased_by, '') = '' THEN
        RAISE EXCEPTION 'gdpr_erase_user: a user id and who asks are required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO person FROM users WHERE id = target FOR UPDATE;
    IF NOT FOUND THEN
        IF reapply_at IS NOT NULL THEN  -- a backup from before the user existed: only the ledger row
            INSERT INTO gdpr_erasures (user_id, erased_at, erased_by) VALUES (target, reapply_at, erased_by)
            ON CONFLICT (user_id) DO NOTHING;
            RETURN '{}'::jsonb;
        END IF;
        IF EXISTS (SELECT FROM gdpr_erasures WHERE user_id = target) THEN
            RAISE EXCEPTION 'gdpr_erase_user: user % was already erased', target USING ERRCODE = 'OD409';
        END IF;
        RAISE EXCEPTION 'gdpr_erase_user: no user %', target USING ERRCODE = 'no_data_found';
    END IF;
    -- the e-mail and name now, and every earlier one the trail recorded for this user row
    SELECT array_agg(DISTINCT v) INTO needles FROM (
        SELECT person.email UNION ALL SELECT person.display_name
        UNION ALL SELECT x.values ->> f FROM audit_logs a
            CROSS JOIN LATERAL (VALUES (a.old_values), (a.new_values)) AS x(values)
            CROSS JOIN unnest(ARRAY['email', 'display_name']) AS f
        WHERE a.table_name = 'users' AND a.record_id = target::text) AS known(v)
    WHERE coalesce(v, '') <> '';
    counts := jsonb_build_object(
        'users', 1,
        'role_memberships', (SELECT count(*) FROM role_memberships WHERE user_id = target OR granted_by = target),
        'workflows', (SELECT count(*) FROM workflows WHERE owner_id = target),
        'workflow_versions', (SELECT count(*) FROM workflow_versions WHERE created_by = target),
        'executions', (SELECT count(*) FROM executions WHERE triggered_by = target));
    -- a very short name would match too much of other people's rows: there only longer needles count
    SELECT coalesce(array_agg(n), '{}') INTO wide_needles FROM unnest(needles) AS n WHERE length(n) >= 3;
    DELETE FROM users WHERE id = target;  -- cascades and SET NULLs, audited (the DELETE row is redacted below)
    UPDATE audit_logs a
       SET old_values = CASE WHEN a.old_values IS NULL THEN NULL
                             WHEN a.table_name = 'users' AND a.record_id = target::text  -- their own row: by key
                             THEN (gdpr_redact_jsonb(a.old_values, needles) - 'last_login_at') || erased_fields
                             ELSE gdpr_redact_jsonb(a.old_values, wide_needles) END,
           new_values = CASE WHEN a.new_values IS NULL THEN NULL
                             WHEN a.table_name = 'users' AND a.record_id = target::text
                             THEN (gdpr_redact_jsonb(a.new_values, needles) - 'last_login_at') || erased_fields
                             ELSE gdpr_redact_jsonb(a.new_values, wide_needles) END
     WHERE (a.table_name = 'users' AND a.record_id = target::text)
        OR EXISTS (SELECT FROM unnest(wide_needles) AS n(needle)
                   WHERE strpos(lower(coalesce(a.old_values::text, '') || coalesce(a.new_values::text, '')),
                                lower(substr(to_jsonb(n.needle)::text, 2, length(to_jsonb(n.needle)::text) - 2))) > 0);
    GET DIAGNOSTICS redacted = ROW_COUNT;
    INSERT INTO audit_logs (organization_id, actor_role, login_role, action, table_name, record_id, new_values)
    VALUES (person.organization_id, current_user, session_user, 'ERASURE', 'users', target::text,
            jsonb_build_object('reapplied', reapply_at IS NOT NULL));
    INSERT INTO gdpr_erasures (user_id, erased_at, erased_by) VALUES (target, coalesce(reapply_at, now()), erased_by)
    ON CONFLICT (user_id) DO NOTHING;
    RETURN counts || jsonb_build_object('audit_logs', redacted);
END
$function$
"""


def _action_check(actions: str) -> None:
    """Swap the CHECK on audit_logs.action, keeping its name (0001 gave it a doubled one: see 0003)."""
    expression = f"action IN ({actions})".replace("'", "''")
    op.execute(f"""
DO $$
DECLARE
    name text;
BEGIN
    SELECT c.conname INTO STRICT name FROM pg_constraint c
    WHERE c.conrelid = 'public.audit_logs'::regclass AND c.contype = 'c'
      AND pg_get_constraintdef(c.oid) LIKE '%action%';
    EXECUTE format('ALTER TABLE public.audit_logs DROP CONSTRAINT %I, ADD CONSTRAINT %I CHECK ({expression})',
                   name, name);
END $$""")


def upgrade() -> None:
    op.create_table(
        "gdpr_erasures",
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("erased_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_gdpr_erasures"),
    )
    op.execute(f"GRANT SELECT ON gdpr_erasures TO {READONLY}")
    _action_check("'INSERT', 'UPDATE', 'DELETE', 'ALERT', 'EXPORT', 'ERASURE'")
    op.execute(REDACT_JSONB)
    op.execute("REVOKE ALL ON FUNCTION gdpr_redact_jsonb(jsonb, text[]) FROM PUBLIC")
    op.execute(ERASE_USER)
    op.execute("REVOKE ALL ON FUNCTION gdpr_erase_user(uuid, text, timestamptz) FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION gdpr_erase_user(uuid, text, timestamptz)")
    op.execute("DROP FUNCTION gdpr_redact_jsonb(jsonb, text[])")
    op.execute("DELETE FROM audit_logs WHERE action IN ('EXPORT', 'ERASURE')")
    _action_check("'INSERT', 'UPDATE', 'DELETE', 'ALERT'")
    op.drop_table("gdpr_erasures")
