"""GDPR export and erasure on the real servers: a person who touches every table, Redis and the
search indices; after erasure their e-mail and name are nowhere (searched for literally), their
colleague is untouched and the security check still passes."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from orchestrator_data import gdpr
from orchestrator_data.gdpr import erase, export
from orchestrator_data.postgres import security
from orchestrator_data.postgres.tenancy import tenant_transaction
from orchestrator_data.redis.sessions import SessionStore
from orchestrator_data.search import indices, sync
from tests.gdpr_people import seed_people, seed_redis

pytestmark = pytest.mark.integration
BOOKKEEPING = ("search_sync_state",)  # the sync's watermark moves on every run, erasure or not


@pytest.fixture
def people(engine, es, layout, redis_client):
    people = seed_people(engine)
    seed_redis(redis_client, people)
    indices.init_indices(es, layout)
    sync.sync(engine, es, layout)
    yield people
    for p in (people.person, people.colleague):
        SessionStore(redis_client).revoke_user(str(p.id))
        redis_client.delete(f"cache:user:{p.id}")
    redis_client.delete(f"cache:members:{people.person.organization_id}")


def _database_text(engine, but: tuple[str, ...] = ()) -> str:
    """Every row of every table in the schema (but those named), as text, lower-cased."""
    with engine.connect() as conn:
        tables = conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                      "AND tablename <> ALL(:but) ORDER BY 1"), {"but": list(but)}).scalars().all()
        return "\n".join(conn.execute(sa.text(f'SELECT coalesce(string_agg(t::text, E\'\\n\'), \'\') FROM "{t}" t')).scalar_one()
                         for t in tables).lower()


def _redis_text(client) -> str:
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        value = {b"string": lambda: client.get(key), b"hash": lambda: client.hgetall(key),
                 b"set": lambda: client.smembers(key)}.get(kind, lambda: b"")()
        parts.append(f"{key!r} {value!r}")
    return "\n".join(parts).lower()


def _search_text(es, layout) -> str:
    es.indices.refresh(index=f"{layout.prefix}-*")
    hits = es.search(index=f"{layout.prefix}-*", size=10_000, query={"match_all": {}})["hits"]["hits"]
    return json.dumps(hits).lower()


def _count(engine, statement: str, **params) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(statement), params).scalar_one()


def test_export_holds_everything_about_the_person_and_is_audited(engine, es, layout, redis_client, people):
    p = people.person
    document = export.export_user(engine, redis_client, es, layout, str(p.id), requested_by="dpo@test")
    assert document["format_version"] == export.FORMAT_VERSION
    assert document["user"]["email"] == p.email and document["organization"]["id"] == p.organization_id
    assert [m["role_name"] for m in document["memberships"]] == ["editor"]
    assert [m["user_id"] for m in document["memberships_granted"]] == [people.colleague.id]
    assert [w["id"] for w in document["workflows"]] == [p.workflow_id]
    assert [v["workflow_id"] for v in document["workflow_versions"]] == [p.workflow_id]
    assert [e["id"] for e in document["executions"]] == [p.execution_id]
    audit = document["audit_logs"]
    # as the actor (their inserts and updates) and as the subject (the colleague created their row)
    assert {a["table_name"] for a in audit} >= {"users", "role_memberships", "workflows", "workflow_versions", "executions"}
    assert any(a["table_name"] == "users" and a["action"] == "INSERT" and a["actor_id"] is None for a in audit)
    assert len(document["sessions"]) == 2
    text = export.to_json(document)
    for token in SessionStore(redis_client).list_user(str(p.id)):
        assert token.id not in text  # session ids are bearer tokens
    assert [d["id"] for d in document["search_documents"]["workflows"]] == [str(p.workflow_id)]
    assert [d["id"] for d in document["search_documents"]["executions"]] == [str(p.execution_id)]
    assert document["search_documents"]["audit_logs"]
    # nothing about the colleague's own things
    assert str(people.colleague.workflow_id) not in json.dumps([document["workflows"], document["executions"]], default=str)
    row = _one_audit(engine, document["audit_row_id"])
    assert row.action == "EXPORT" and row.record_id == str(p.id) and row.new_values["requested_by"] == "dpo@test"
    assert p.email not in json.dumps(row.new_values)


def _one_audit(engine, audit_id: int):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM audit_logs WHERE id = :id"), {"id": audit_id}).one()


def test_export_of_an_unknown_or_malformed_user_is_refused(engine):
    before = _count(engine, "SELECT count(*) FROM audit_logs")
    with pytest.raises(gdpr.UnknownUser):
        export.export_user(engine, None, None, None, str(uuid.uuid4()), requested_by="dpo@test")
    with pytest.raises(gdpr.InvalidUserId):
        export.export_user(engine, None, None, None, "ada@example.org", requested_by="dpo@test")
    assert _count(engine, "SELECT count(*) FROM audit_logs") == before


def test_erasure_leaves_no_trace_of_the_person_and_the_colleague_untouched(engine, es, layout, redis_client, people):
    p, c = people.person, people.colleague
    for needle in (p.email, p.name):
        assert needle.lower() in _database_text(engine)
    assert p.email.lower() in _redis_text(redis_client)
    colleague_sessions = SessionStore(redis_client).list_user(str(c.id))

    report = erase.erase_user(engine, redis_client, es, layout, str(p.id), erased_by="dpo@test", ledger=None)

    assert report.ok and not report.already_erased, report.errors
    assert report.postgres["users"] == 1 and report.postgres["workflows"] == 1
    assert report.postgres["executions"] == 1 and report.postgres["role_memberships"] == 2
    assert report.postgres["audit_logs"] >= 3  # the INSERT, the renames, the literal mention, the DELETE
    assert report.redis["sessions"] == 2 and report.redis["cache_entries"] == 2
    assert report.search == {"workflows": 0, "executions": 0}
    database, keys, documents = _database_text(engine), _redis_text(redis_client), _search_text(es, layout)
    for needle in (p.email, p.name, "Ada Q. Quarrington"):
        assert needle.lower() not in database, needle
        assert needle.lower() not in keys, needle
        assert needle.lower() not in documents, needle
    # the organization keeps the rows, without the reference
    assert _count(engine, "SELECT count(*) FROM workflows WHERE id = :id AND owner_id IS NULL", id=p.workflow_id) == 1
    assert _count(engine, "SELECT count(*) FROM executions WHERE id = :id AND triggered_by IS NULL", id=p.execution_id) == 1
    # the colleague: row, name in the trail, role, work, sessions
    assert c.email.lower() in database and c.name.lower() in database
    assert _count(engine, "SELECT count(*) FROM role_memberships WHERE user_id = :id", id=c.id) == 1
    assert _count(engine, "SELECT count(*) FROM workflows WHERE owner_id = :id", id=c.id) == 1
    assert SessionStore(redis_client).list_user(str(c.id)) == colleague_sessions
    assert redis_client.exists(f"cache:user:{c.id}")
    # one ERASURE row naming nobody, one ledger row; the trail is still closed to everyone else
    assert _count(engine, "SELECT count(*) FROM audit_logs WHERE action = 'ERASURE' AND record_id = :id", id=str(p.id)) == 1
    assert [entry[0] for entry in erase.ledger(engine)] == [p.id]
    assert security.check_security(engine).ok


def test_erasing_twice_or_an_unknown_user_changes_nothing(engine, es, layout, redis_client, people):
    p = people.person
    erase.erase_user(engine, redis_client, es, layout, str(p.id), erased_by="dpo@test", ledger=None)
    before = _database_text(engine, but=BOOKKEEPING)
    again = erase.erase_user(engine, redis_client, es, layout, str(p.id), erased_by="dpo@test", ledger=None)
    assert again.already_erased and again.postgres == {} and again.ok
    with pytest.raises(gdpr.UnknownUser):
        erase.erase_user(engine, redis_client, es, layout, str(uuid.uuid4()), erased_by="dpo@test", ledger=None)
    with pytest.raises(gdpr.InvalidUserId):
        erase.erase_user(engine, redis_client, es, layout, "not-a-uuid", erased_by="dpo@test", ledger=None)
    assert _database_text(engine, but=BOOKKEEPING) == before


def test_the_app_role_cannot_erase_or_redact_the_trail(engine, people):
    p = people.person
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        with tenant_transaction(engine, p.organization_id, p.id) as conn:
            conn.execute(sa.text("SELECT gdpr_erase_user(:u, 'app')"), {"u": p.id})
    with engine.begin() as conn:  # granting it is reported by the security check
        conn.execute(sa.text("GRANT EXECUTE ON FUNCTION gdpr_erase_user(uuid, text, timestamptz) TO orchestrator_app"))
    assert any("gdpr_erase_user" in problem for problem in security.check_security(engine).problems)


def test_a_system_that_stays_down_is_retried_then_reported_and_a_rerun_completes_it(
        engine, es, layout, redis_client, people, monkeypatch):
    from orchestrator_data.redis.client import create_client
    from orchestrator_data.stack.common import free_port

    p = people.person
    monkeypatch.setattr(erase, "ATTEMPTS", 2)
    dead = create_client(f"redis://127.0.0.1:{free_port()}/0")
    report = erase.erase_user(engine, dead, es, layout, str(p.id), erased_by="dpo@test", ledger=None)
    assert not report.ok and set(report.errors) == {"redis"} and report.redis is None
    assert report.postgres["users"] == 1 and report.search == {"workflows": 0, "executions": 0}
    assert len(SessionStore(redis_client).list_user(str(p.id))) == 2  # not reached yet
    again = erase.erase_user(engine, redis_client, es, layout, str(p.id), erased_by="dpo@test", ledger=None)
    assert again.ok and again.already_erased and again.redis == {"sessions": 2, "cache_entries": 1}
    assert SessionStore(redis_client).list_user(str(p.id)) == []


def test_redaction_replaces_whole_words_in_string_values_only(engine):
    doc = {"note": "Al met AL.B@x.org; Alpha stays", "list": ["al", {"deep": "(Al)"}], "n": 1, "Al": None}
    with engine.connect() as conn:
        redacted = conn.execute(sa.text("SELECT gdpr_redact_jsonb(CAST(:doc AS jsonb), ARRAY['Al', 'al.b@x.org'])"),
                                {"doc": json.dumps(doc)}).scalar_one()
    assert redacted == {"note": "[erased] met [erased]; Alpha stays", "list": ["[erased]", {"deep": "([erased])"}],
                        "n": 1, "Al": None}
