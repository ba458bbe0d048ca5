"""A person who touches every table (and Redis, and the search indices), beside a colleague who must
stay untouched: the subject of the GDPR export and erasure tests. Shared with tests/cli and tests/jobs."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from orchestrator_data.postgres import models
from orchestrator_data.postgres.tenancy import tenant_transaction
from orchestrator_data.redis.cache import Cache
from orchestrator_data.redis.sessions import SessionStore


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    email: str
    name: str
    organization_id: uuid.UUID
    workflow_id: uuid.UUID
    execution_id: uuid.UUID


@dataclass(frozen=True)
class People:
    person: Person
    colleague: Person


def _user(conn, organization_id, tag: str, name: str) -> tuple[uuid.UUID, str]:
    email = f"{tag}.{uuid.uuid4().hex[:8]}@example.org"
    user = conn.execute(models.users.insert().values(organization_id=organization_id, email=email,
                                                     display_name=name).returning(models.users.c.id)).scalar_one()
    return user, email


def seed_people(engine: sa.Engine) -> People:
    """Two users of one organization, each owning a workflow (with a version) and an execution; the
    person holds a role granted by the colleague and granted one to the colleague; the person renames
    themself (an UPDATE audit row with the old and new name) and writes their e-mail into a workflow
    description (a literal mention in the trail)."""
    org_id = uuid.uuid4()
    with tenant_transaction(engine, org_id) as conn:
        conn.execute(models.organizations.insert().values(id=org_id, slug=f"gdpr-{org_id.hex[:10]}", name="Acme GDPR"))
        role = conn.execute(models.roles.insert().values(organization_id=org_id, name="editor",
                                                         permissions=["workflow.edit"]).returning(models.roles.c.id)).scalar_one()
        person_id, person_email = _user(conn, org_id, "ada", "Ada Quarrington")
        colleague_id, colleague_email = _user(conn, org_id, "bob", "Bob Colleague")
    people = []
    for user, email, name, other in ((person_id, person_email, "Ada Quarrington", colleague_id),
                                     (colleague_id, colleague_email, "Bob Colleague", person_id)):
        with tenant_transaction(engine, org_id, user) as conn:
            conn.execute(models.role_memberships.insert().values(organization_id=org_id, user_id=other, role_id=role,
                                                                 granted_by=user))
            workflow = conn.execute(models.workflows.insert().values(
                organization_id=org_id, owner_id=user, name=f"flow of {user.hex[:6]}", engine_type="custom",
                description="plain", definition={"nodes": []}).returning(models.workflows.c.id)).scalar_one()
            conn.execute(models.workflow_versions.insert().values(
                organization_id=org_id, workflow_id=workflow, version=1, definition={"nodes": []},
                checksum="0" * 64, created_by=user))
            execution = conn.execute(models.executions.insert().values(
                organization_id=org_id, workflow_id=workflow, workflow_version=1, triggered_by=user,
            ).returning(models.executions.c.id)).scalar_one()
            people.append(Person(user, email, name, org_id, workflow, execution))
    person = people[0]
    with tenant_transaction(engine, org_id, person.id) as conn:
        renamed = "Ada Q. Quarrington"
        conn.execute(models.users.update().where(models.users.c.id == person.id).values(display_name=renamed))
        conn.execute(models.users.update().where(models.users.c.id == person.id).values(display_name=person.name))
        conn.execute(models.workflows.update().where(models.workflows.c.id == person.workflow_id)
                     .values(description=f"questions to {person.email.upper()}"))
        conn.execute(models.workflows.update().where(models.workflows.c.id == person.workflow_id)
                     .values(description="plain"))
    return People(person, people[1])


def seed_redis(client, people: People) -> dict[str, list[str]]:
    """Two sessions each, a cached user row each, and a cached list mentioning the person's e-mail."""
    store, cache = SessionStore(client), Cache(client)
    sessions = {}
    for p in (people.person, people.colleague):
        sessions[str(p.id)] = [store.create(str(p.id), {"ua": "test"}).id for _ in range(2)]
        cache.set("user", str(p.id), {"email": p.email, "name": p.name})
    cache.set("members", str(people.person.organization_id),
              json.dumps([{"email": people.person.email}, {"email": people.colleague.email}]))
    return sessions
