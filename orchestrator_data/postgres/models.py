"""The application schema as SQLAlchemy Core tables: the single source the migrations are checked
against (drift check), the seeder writes through, and the search sync reads from.

The original tool's core tables keep their names (organizations, users, workflows,
workflow_versions, executions, marketplace_items); RBAC (roles, role_memberships), the append-only
audit_logs and the migration ledger `_migration_history` are added. Every tenant-owned row carries
organization_id; row-level security, audit triggers and roles live in the migrations (they are not
expressible here), and `TENANT_TABLES` / `AUDITED_TABLES` say which tables they must cover.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ENGINE_TYPES = ("langchain", "llamaindex", "autogen", "crewai", "semantic_kernel", "custom")
EXECUTION_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")
EXECUTION_TRIGGERS = ("manual", "schedule", "api", "webhook")
PLANS = ("free", "team", "enterprise")
USER_STATUSES = ("invited", "active", "disabled")
WORKFLOW_STATUSES = ("draft", "active", "archived")
PRICING_MODELS = ("free", "one_time", "subscription")
LISTING_STATUSES = ("draft", "published", "delisted")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _uuid_pk() -> sa.Column:
    return sa.Column("id", pg.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()"))


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def _search_vector(**weights: str) -> sa.Column:
    """A stored tsvector over columns, weighted A/B/C for ranking; kept current by PostgreSQL itself."""
    parts = " || ".join(
        f"setweight(to_tsvector('english'::regconfig, coalesce({column}, '')), '{weight}')"
        for column, weight in weights.items()
    )
    return sa.Column("search_vector", pg.TSVECTOR, sa.Computed(parts, persisted=True))


def _row_version() -> sa.Column:
    """A counter a trigger raises on every UPDATE (revision 0006). Updates of one row are serialized by
    its lock, so the value only grows for that row: the search sync uses it as the document's external
    version, and a replayed or out-of-order write never turns a document back to an older state."""
    return sa.Column("row_version", sa.BigInteger, nullable=False, server_default="1")


def _tenant(ondelete: str = "CASCADE") -> sa.Column:
    return sa.Column(
        "organization_id", pg.UUID(as_uuid=True),
        sa.ForeignKey("organizations.id", ondelete=ondelete), nullable=False,
    )


def _tenant_reference(table: str, column: str, parent: str, name: str | None = None) -> sa.ForeignKeyConstraint:
    """A nullable reference kept inside the row's organization: (organization_id, column) → parent
    (organization_id, id). Deleting the parent row clears only `column` (PostgreSQL 15+), never
    organization_id."""
    return sa.ForeignKeyConstraint(
        ["organization_id", column], [f"{parent}.organization_id", f"{parent}.id"],
        ondelete=f"SET NULL ({column})", name=name or f"fk_{table}_tenant_{column}",
    )


organizations = sa.Table(
    "organizations", metadata,
    _uuid_pk(),
    sa.Column("slug", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("plan", sa.Text, nullable=False, server_default="free"),
    sa.Column("settings", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    *_timestamps(),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),  # soft delete: undo within the grace period
    sa.CheckConstraint(_in("plan", PLANS), name="plan"),
    sa.CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name="slug_format"),
)

users = sa.Table(
    "users", metadata,
    _uuid_pk(),
    _tenant(),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="active"),
    sa.Column("last_login_at", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(_in("status", USER_STATUSES), name="status"),
    sa.CheckConstraint("position('@' in email) > 1", name="email_format"),
    # "users by organization": the members page and every permission lookup
    sa.Index("ix_users_organization_id_created_at", "organization_id", "created_at"),
    # target of the tenant-consistent foreign keys (every reference to a user): a row may only point
    # into its own organization
    sa.UniqueConstraint("organization_id", "id"),
    sa.Index("uq_users_organization_id_lower_email", "organization_id", sa.text("lower(email)"), unique=True),
)

roles = sa.Table(
    "roles", metadata,
    _uuid_pk(),
    _tenant(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("permissions", pg.ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")),
    sa.Column("is_system", sa.Boolean, nullable=False, server_default=sa.false()),
    *_timestamps(),
    sa.UniqueConstraint("organization_id", "name"),
    sa.UniqueConstraint("organization_id", "id"),
)

role_memberships = sa.Table(
    "role_memberships", metadata,
    _tenant(),
    sa.Column("user_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("role_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("granted_by", pg.UUID(as_uuid=True)),
    sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_role_memberships_role_id", "role_id"),
    # foreign keys bypass row-level security, so without these a tenant could link to another's rows
    sa.ForeignKeyConstraint(["organization_id", "user_id"], ["users.organization_id", "users.id"],
                            ondelete="CASCADE", name="fk_role_memberships_tenant_user"),
    sa.ForeignKeyConstraint(["organization_id", "role_id"], ["roles.organization_id", "roles.id"],
                            ondelete="CASCADE", name="fk_role_memberships_tenant_role"),
    _tenant_reference("role_memberships", "granted_by", "users"),
)

workflows = sa.Table(
    "workflows", metadata,
    _uuid_pk(),
    _tenant(),
    sa.Column("owner_id", pg.UUID(as_uuid=True)),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("engine_type", sa.Text, nullable=False),
    sa.Column("definition", pg.JSONB, nullable=False),  # the current graph: nodes, edges, model settings
    sa.Column("current_version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("status", sa.Text, nullable=False, server_default="draft"),
    sa.Column("tags", pg.ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")),
    _search_vector(name="A", description="B"),
    *_timestamps(),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    _row_version(),
    sa.CheckConstraint(_in("engine_type", ENGINE_TYPES), name="engine_type"),
    sa.CheckConstraint(_in("status", WORKFLOW_STATUSES), name="status"),
    sa.CheckConstraint("current_version >= 1", name="current_version_positive"),
    # "workflows by engine type": the engine filter of the workflow list
    sa.Index("ix_workflows_organization_id_engine_type", "organization_id", "engine_type"),
    sa.Index("ix_workflows_search_vector", "search_vector", postgresql_using="gin"),
    sa.UniqueConstraint("organization_id", "id"),
    _tenant_reference("workflows", "owner_id", "users", name="fk_workflows_tenant_owner"),
)

workflow_versions = sa.Table(
    "workflow_versions", metadata,
    _uuid_pk(),
    _tenant(),
    sa.Column("workflow_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("definition", pg.JSONB, nullable=False),
    sa.Column("checksum", sa.Text, nullable=False),  # sha256 of the canonical definition
    sa.Column("change_note", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", pg.UUID(as_uuid=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # with organization_id, so that a duplicate is only ever found inside the organization
    sa.UniqueConstraint("organization_id", "workflow_id", "version"),
    sa.ForeignKeyConstraint(["organization_id", "workflow_id"], ["workflows.organization_id", "workflows.id"],
                            ondelete="CASCADE", name="fk_workflow_versions_tenant_workflow"),
    _tenant_reference("workflow_versions", "created_by", "users"),
    sa.CheckConstraint("version >= 1", name="version_positive"),
)

executions = sa.Table(
    "executions", metadata,
    _uuid_pk(),
    _tenant(),
    sa.Column("workflow_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("workflow_version", sa.Integer, nullable=False),
    sa.Column("triggered_by", pg.UUID(as_uuid=True)),
    sa.Column("trigger", sa.Text, nullable=False, server_default="manual"),
    sa.Column("status", sa.Text, nullable=False, server_default="queued"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("duration_ms", sa.BigInteger),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cost_usd", sa.Numeric(12, 6), nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
    _row_version(),
    sa.CheckConstraint(_in("status", EXECUTION_STATUSES), name="status"),
    sa.CheckConstraint(_in("trigger", EXECUTION_TRIGGERS), name="trigger"),
    sa.CheckConstraint("finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at", name="finished_after_start"),
    sa.CheckConstraint("duration_ms IS NULL OR duration_ms >= 0", name="duration_non_negative"),
    sa.CheckConstraint("prompt_tokens >= 0 AND completion_tokens >= 0 AND cost_usd >= 0", name="usage_non_negative"),
    # "executions by status and time": the runs page ("failed in the last 24 h"), newest first
    sa.Index("ix_executions_organization_id_status_created_at", "organization_id", "status", sa.text("created_at DESC")),
    sa.Index("ix_executions_workflow_id_created_at", "workflow_id", sa.text("created_at DESC")),
    # a month of the search full load, and retention's horizon (revision 0010)
    sa.Index("ix_executions_created_at_brin", "created_at", postgresql_using="brin"),
    sa.ForeignKeyConstraint(["organization_id", "workflow_id"], ["workflows.organization_id", "workflows.id"],
                            ondelete="CASCADE", name="fk_executions_tenant_workflow"),
    _tenant_reference("executions", "triggered_by", "users"),
)

marketplace_items = sa.Table(
    "marketplace_items", metadata,
    _uuid_pk(),
    _tenant(),  # the publisher
    sa.Column("workflow_id", pg.UUID(as_uuid=True)),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("engine_type", sa.Text, nullable=False),
    sa.Column("pricing_model", sa.Text, nullable=False, server_default="free"),
    sa.Column("price_cents", sa.Integer, nullable=False, server_default="0"),
    sa.Column("currency", sa.String(3), nullable=False, server_default="USD"),
    sa.Column("rating", sa.Numeric(3, 2)),
    sa.Column("rating_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("downloads", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("status", sa.Text, nullable=False, server_default="draft"),
    sa.Column("tags", pg.ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    _search_vector(name="A", summary="B", description="C"),
    *_timestamps(),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    _row_version(),
    sa.CheckConstraint(_in("pricing_model", PRICING_MODELS), name="pricing_model"),
    sa.CheckConstraint(_in("status", LISTING_STATUSES), name="status"),
    sa.CheckConstraint(_in("engine_type", ENGINE_TYPES), name="engine_type"),
    sa.CheckConstraint("price_cents >= 0 AND (pricing_model <> 'free' OR price_cents = 0)", name="price"),
    sa.CheckConstraint("rating IS NULL OR (rating >= 0 AND rating <= 5)", name="rating_range"),
    sa.CheckConstraint("rating_count >= 0 AND downloads >= 0", name="counters_non_negative"),
    sa.Index("ix_marketplace_items_search_vector", "search_vector", postgresql_using="gin"),
    sa.Index("ix_marketplace_items_status_downloads", "status", sa.text("downloads DESC")),
    sa.Index("ix_marketplace_items_organization_id", "organization_id"),
    _tenant_reference("marketplace_items", "workflow_id", "workflows", name="fk_marketplace_items_tenant_workflow"),
)

audit_logs = sa.Table(
    "audit_logs", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    # nullable: a change made outside any tenant (a migration, an operator) still leaves a trail
    sa.Column("organization_id", pg.UUID(as_uuid=True)),
    sa.Column("actor_id", pg.UUID(as_uuid=True)),  # the application user, from app.user_id
    sa.Column("actor_role", sa.Text, nullable=False),  # the database role that made the change
    sa.Column("login_role", sa.Text),  # session_user: the login behind actor_role when it switched with SET ROLE
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("table_name", sa.Text, nullable=False),
    sa.Column("record_id", sa.Text),
    sa.Column("old_values", pg.JSONB),
    sa.Column("new_values", pg.JSONB),
    sa.Column("transaction_id", sa.BigInteger, nullable=False, server_default=sa.text("txid_current()")),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
    # 'ALERT': an operational alert (revision 0003), written by the owner role, never the app role
    # 'REWRITE': rows of table_name written with the row-audit triggers paused (revision 0011, postgres/rewrites.py)
    sa.CheckConstraint("action IN ('INSERT', 'UPDATE', 'DELETE', 'ALERT', 'EXPORT', 'ERASURE', 'REWRITE')",
                       name="action"),
    sa.Index("ix_audit_logs_organization_id_occurred_at", "organization_id", "occurred_at"),
    sa.Index("ix_audit_logs_table_name_record_id", "table_name", "record_id"),
    # the search sync reads the changes of a window of transactions (revision 0006)
    sa.Index("ix_audit_logs_transaction_id", "transaction_id"),
    # a month of the search full load, and retention's horizon (revision 0010)
    sa.Index("ix_audit_logs_occurred_at_brin", "occurred_at", postgresql_using="brin"),
)

# Where the search sync stands per index (revision 0006): every change by a transaction below
# `watermark` (a transaction id, from pg_snapshot_xmin) is in Elasticsearch. It only moves forward,
# and only after Elasticsearch acknowledged every document of the window.
search_sync_state = sa.Table(
    "search_sync_state", metadata,
    sa.Column("index_name", sa.Text, primary_key=True),  # the index's read alias
    sa.Column("watermark", sa.BigInteger, nullable=False),
    sa.Column("mapping_version", sa.Integer, nullable=False),
    sa.Column("full_synced_at", sa.DateTime(timezone=True)),
    sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("documents_written", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("documents_deleted", sa.BigInteger, nullable=False, server_default="0"),
    # the snapshot the last rebuild loaded from: a REWRITE mark visible in it is in the index (revision 0011)
    sa.Column("rebuilt_snapshot", sa.Text),
    # the run that last wrote the index; its backing indices carry the same in their _meta (revision 0012)
    sa.Column("writer_id", pg.UUID(as_uuid=True)),
    sa.Column("writer_generation", sa.BigInteger),
)

# Each finished partition (one month) of a search index's full load (revision 0010). NULL bounds are
# open: the first partition also loads every older row, the last every later one. Never moves the
# watermark; the first incremental sync of a never-synced index starts from the lowest snapshot_xmin
# when the loads cover every row.
search_partition_loads = sa.Table(
    "search_partition_loads", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("index_name", sa.Text, nullable=False),  # the index's read alias
    sa.Column("partition_key", sa.Text, nullable=False),  # the month, YYYY-MM
    sa.Column("partition_start", sa.DateTime(timezone=True)),
    sa.Column("partition_end", sa.DateTime(timezone=True)),
    sa.Column("snapshot_xmin", sa.BigInteger, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("documents_written", sa.BigInteger, nullable=False),
    sa.Column("already_current", sa.BigInteger, nullable=False),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Index("ix_search_partition_loads_index_name", "index_name"),
)

# Each restore check of a search snapshot (revision 0007): restored into renamed indices, compared
# with the counts recorded in the snapshot and with the live documents, the copies deleted.
search_restore_checks = sa.Table(
    "search_restore_checks", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("repository", sa.Text, nullable=False),
    sa.Column("snapshot", sa.Text, nullable=False),
    sa.Column("snapshot_started_at", sa.DateTime(timezone=True), nullable=False),  # the freshness clock
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("summary", pg.JSONB, nullable=False),  # per index: recorded, restored, sampled, equal, changed
    sa.Index("ix_search_restore_checks_repository_snapshot", "repository", "snapshot"),
)

# GDPR erasure ledger (revision 0008): ids and time only, re-applied after every restore.
gdpr_erasures = sa.Table(
    "gdpr_erasures", metadata,
    sa.Column("user_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("erased_by", sa.Text, nullable=False),  # the operator who asked, never the person
)

migration_history = sa.Table(
    "_migration_history", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("revision", sa.Text, nullable=False),
    sa.Column("direction", sa.Text, nullable=False),
    sa.Column("checksum", sa.Text, nullable=False),  # sha256 of the revision file as applied
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("applied_by", sa.Text, nullable=False),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
    sa.CheckConstraint("direction IN ('upgrade', 'downgrade')", name="direction"),
    sa.Index("ix__migration_history_revision_applied_at", "revision", "applied_at"),
)

# Tables whose rows belong to one organization: row-level security must be enabled AND forced on
# each, keyed on current_setting('app.organization_id', true).
TENANT_TABLES = (
    "users", "roles", "role_memberships", "workflows", "workflow_versions", "executions", "marketplace_items",
)
# Tables whose every insert, update and delete writes an audit_logs row.
AUDITED_TABLES = ("organizations", *TENANT_TABLES)
# The order the seeder loads in and `seed clean` deletes in reverse.
LOAD_ORDER = (
    "organizations", "users", "roles", "role_memberships", "workflows", "workflow_versions", "executions",
    "marketplace_items",
)
