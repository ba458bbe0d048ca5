"""The export: one JSON document with everything held about one person (docs/gdpr.md, format 1).

PostgreSQL is read as the read-only role in one REPEATABLE READ, read-only transaction, so every
table is seen at the same instant. Sessions come from Redis (their ids are bearer tokens and are
left out), search documents from Elasticsearch (those linking to the person's id). The export itself
is recorded as an EXPORT audit row, written as the owner: who asked and when, never the content.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import redis
import sqlalchemy as sa
from elasticsearch import Elasticsearch

from orchestrator_data.gdpr import UnknownUser, user_id as as_user_id
from orchestrator_data.postgres import models, roles
from orchestrator_data.redis.sessions import SessionStore
from orchestrator_data.replication.follow import write_once
from orchestrator_data.search.indices import Layout

FORMAT_VERSION = 1
AUDIT_ACTION = "EXPORT"

# Each part of the document: the table's rows that concern the person.
QUERIES: dict[str, str] = {
    "memberships": (
        "SELECT m.organization_id, m.role_id, r.name AS role_name, r.permissions, m.granted_by, m.granted_at "
        "FROM role_memberships m JOIN roles r ON r.id = m.role_id WHERE m.user_id = :user ORDER BY m.granted_at"),
    "memberships_granted": (
        "SELECT organization_id, user_id, role_id, granted_at FROM role_memberships "
        "WHERE granted_by = :user ORDER BY granted_at"),
    "workflows": ("SELECT * FROM workflows WHERE owner_id = :user ORDER BY created_at"),
    "workflow_versions": ("SELECT * FROM workflow_versions WHERE created_by = :user ORDER BY created_at, version"),
    "executions": ("SELECT * FROM executions WHERE triggered_by = :user ORDER BY created_at"),
    # as the actor, or as the subject: their user row and their memberships (record id "user,role")
    "audit_logs": (
        "SELECT * FROM audit_logs WHERE actor_id = :user "
        "OR (table_name = 'users' AND record_id = CAST(:user AS text)) "
        "OR (table_name = 'role_memberships' AND record_id LIKE CAST(:user AS text) || ',%') ORDER BY id"),
}
# documents that carry the person's id, per synced index: the fields that hold it
SEARCH_FIELDS: dict[str, tuple[str, ...]] = {
    "workflows": ("owner_id",), "executions": ("triggered_by",), "audit_logs": ("actor_id",),
}
SEARCH_LIMIT = 10_000


def _rows(conn: sa.Connection, statement: str, user: uuid.UUID) -> list[dict[str, Any]]:
    return [_plain(dict(row)) for row in conn.execute(sa.text(statement), {"user": user}).mappings()]


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("search_vector", None)  # derived from the row's own text
    return row


def read_postgres(engine: sa.Engine, user: uuid.UUID) -> dict[str, Any]:
    """The person's rows, as the read-only role, in one snapshot. UnknownUser when there is no such user."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            conn.execute(sa.text(f"SET LOCAL ROLE {roles.READONLY_ROLE}"))
            person = conn.execute(sa.select(models.users).where(models.users.c.id == user)).mappings().first()
            if person is None:
                raise UnknownUser(f"no user {user}")
            document: dict[str, Any] = {"user": dict(person)}
            document["organization"] = dict(conn.execute(
                sa.select(models.organizations.c.id, models.organizations.c.slug, models.organizations.c.name)
                .where(models.organizations.c.id == person["organization_id"])).mappings().one())
            for part, statement in QUERIES.items():
                document[part] = _rows(conn, statement, user)
            return document


def read_sessions(client: redis.Redis, user: uuid.UUID) -> list[dict[str, Any]]:
    """Live sessions without their ids (bearer tokens)."""
    return [{"created_at": s.created_at, "last_seen_at": s.last_seen_at, "expires_at": s.expires_at, "data": s.data}
            for s in SessionStore(client).list_user(str(user))]


def read_search(client: Elasticsearch, layout: Layout, user: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """Per index, the documents whose id fields name the person."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, fields in SEARCH_FIELDS.items():
        alias = layout.read_alias(name)
        if not client.indices.exists_alias(name=alias):
            found[name] = []
            continue
        query = {"bool": {"should": [{"term": {f: str(user)}} for f in fields], "minimum_should_match": 1}}
        hits = client.search(index=alias, query=query, size=SEARCH_LIMIT, sort=["_doc"])["hits"]["hits"]
        found[name] = [{"id": h["_id"], **h["_source"]} for h in hits]
    return found


def record_export(engine: sa.Engine, person: dict[str, Any], requested_by: str) -> int:
    """The EXPORT audit row (who asked, when; never the content), as the owner like alert rows."""
    with engine.begin() as conn:
        roles.act_as_owner(conn)
        return conn.execute(models.audit_logs.insert().values(
            organization_id=person["organization_id"], actor_role=sa.func.current_user(),
            login_role=sa.func.session_user(), action=AUDIT_ACTION, table_name="users",
            record_id=str(person["id"]), new_values={"requested_by": requested_by, "format_version": FORMAT_VERSION},
        ).returning(models.audit_logs.c.id)).scalar_one()


def export_user(engine: sa.Engine, redis_client: redis.Redis | None, search_client: Elasticsearch | None,
                layout: Layout | None, user_id: str | uuid.UUID, requested_by: str,
                read_engine: sa.Engine | None = None) -> dict[str, Any]:
    """The export document (format FORMAT_VERSION). The rows are read through `read_engine` when given (a
    standby: DATABASE_READ_URL), the export is recorded through `engine`. Raises InvalidUserId, UnknownUser."""
    user = as_user_id(user_id)
    document = {"format_version": FORMAT_VERSION, "exported_at": datetime.now(timezone.utc),
                "user_id": user, "requested_by": requested_by}
    document.update(read_postgres(read_engine or engine, user))
    document["sessions"] = read_sessions(redis_client, user) if redis_client is not None else None
    document["search_documents"] = (read_search(search_client, layout, user)
                                    if search_client is not None and layout is not None else None)
    # an audit row is not safe to write twice: a failover cutting it off is reported, never repeated
    document["audit_row_id"] = write_once(lambda: record_export(engine, document["user"], requested_by),
                                          "the GDPR export's audit row")
    return document


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, default=str, sort_keys=False) + "\n"
