"""bring_in_line on the real servers: a database moved back in time (put back as a copy taken earlier),
and at once search and Redis hold nothing from after the point, and nothing it still has is lost."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from orchestrator_data.errors import BadInput
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.recovery.aftermath import bring_in_line
from orchestrator_data.redis.cache import Cache
from orchestrator_data.redis.execution_state import ExecutionStateStore
from orchestrator_data.redis.keyspace import DEAD_LETTER, EXECUTION_STATUS, QUEUE, RATE_LIMIT
from orchestrator_data.redis.queues import WorkQueue
from orchestrator_data.redis.sessions import SessionStore
from orchestrator_data.search import status, sync
from orchestrator_data.search.sources import SYNCED
from orchestrator_data.settings import load_settings
from tests.orchestrator_data.search.conftest import layout  # noqa: F401 - a fresh index prefix per test
from tests.orchestrator_data.search.test_history import change_everything
from tests.search_contents import documents, rows
from tests.time_travel import drop_point, go_back, take_point

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(migrated_url, layout):
    return load_settings().model_copy(update={"database_url": migrated_url, "search_index_prefix": layout.prefix})


@pytest.fixture
def queue_type(redis_client):
    name = f"aftermath{uuid.uuid4().hex[:8]}"  # a queue of its own: tests never see each other's entries
    yield name
    redis_client.delete(QUEUE.key(type=name), DEAD_LETTER.key(type=name))


def test_after_a_recovery_search_and_redis_hold_nothing_from_after_the_point(
        engine, migrated_url, stack, es, layout, redis_client, settings, queue_type):
    seed(engine, "testing", SeedPlan(executions=40))
    sync.create_indices(engine, es, layout)
    sync.sync(engine, es, layout)
    with engine.connect() as conn:
        kept_execution, kept_user = (str(v) for v in conn.execute(sa.text(
            "SELECT e.id, u.id FROM executions e, users u ORDER BY e.id DESC, u.id LIMIT 1")).one())
    point = take_point(stack, migrated_url, engine)
    try:
        after = change_everything(engine)
        sync.sync(engine, es, layout)
        # Redis state written after the point: for the new execution, a user that never was, a cache value
        states, queue = ExecutionStateStore(redis_client), WorkQueue(redis_client, queue_type)
        queue.ensure_group()
        states.update(after["inserted"], status="running", progress=40)
        states.update(kept_execution, status="running", progress=10)
        future_entry = queue.enqueue({"execution_id": after["inserted"]})
        kept_entry = queue.enqueue({"execution_id": kept_execution})
        queue.consume("worker-1", count=10, block=None)  # both delivered: the future one is pending
        other = queue.enqueue({"note": "no execution named"})
        redis_client.xadd(DEAD_LETTER.key(type=queue_type), {"payload": json.dumps({"execution_id": after["inserted"]})})
        sessions = SessionStore(redis_client)
        ghost = sessions.create(str(uuid.uuid4()))
        member = sessions.create(kept_user)
        Cache(redis_client).set("workflow", after["renamed"], {"name": "renamed after the point"})
        limit_key = RATE_LIMIT.key(identifier=f"ip{uuid.uuid4().hex[:8]}", window="60s")
        redis_client.set(limit_key, "1", px=60_000)
        go_back(stack, point, engine)
    finally:
        drop_point(stack, point)

    report = bring_in_line(settings, "  copy put back   by the test ")

    assert report.reason == "copy put back by the test" and report.not_configured == []
    by_index = {i.index: i for i in report.search}
    assert set(by_index) == set(SYNCED)
    assert by_index["executions"].removed == 1                  # the execution inserted after the point
    assert by_index["workflows"].rewritten >= 1                 # the renamed workflow (and its version)
    for name in SYNCED:                                         # nothing from after the point, nothing missing
        assert set(documents(es, layout, name)) == rows(engine, name), name
        assert by_index[name].documents_after == len(rows(engine, name))
    assert documents(es, layout, "workflows")[after["renamed"]]["_source"]["name"] != "renamed after the point"
    assert after["deleted"] in documents(es, layout, "executions")

    assert report.redis == {"execution_status": 1, "queue_entries": 1, "dead_letters": 1, "cache": 1, "sessions": 1}
    assert not redis_client.exists(EXECUTION_STATUS.key(execution_id=after["inserted"]))
    assert states.get(kept_execution).progress == 10
    left = [entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            for entry_id, _ in redis_client.xrange(QUEUE.key(type=queue_type))]
    assert left == [kept_entry, other] and future_entry not in [p.id for p in queue.pending()]
    assert redis_client.xlen(DEAD_LETTER.key(type=queue_type)) == 0
    assert sessions.get(ghost.id) is None and sessions.get(member.id) is not None
    assert Cache(redis_client).get("workflow", after["renamed"]) is None
    assert redis_client.exists(limit_key)

    # the rebuilt indices carry the database's writer: the next plain sync is incremental again
    assert {r.mode for r in sync.sync(engine, es, layout)} == {"incremental"}
    assert {r.state for r in status.search_status(engine, es, layout, tuple(SYNCED))} == {status.State.IN_STEP}


def test_a_reason_is_required(settings):
    with pytest.raises(BadInput, match="a reason is required"):
        bring_in_line(settings, "   ")


def test_a_person_erased_after_the_point_is_erased_again_before_search_is_rebuilt(
        engine, migrated_url, stack, es, layout, settings, tmp_path):
    from orchestrator_data.gdpr.erase import erase_user
    from orchestrator_data.gdpr.ledger import ErasureLedger

    seed(engine, "testing", SeedPlan(executions=20))
    sync.create_indices(engine, es, layout)
    sync.sync(engine, es, layout)
    with engine.connect() as conn:
        person, email = (str(v) for v in conn.execute(sa.text(
            "SELECT u.id, u.email FROM users u JOIN workflows w ON w.owner_id = u.id ORDER BY u.id LIMIT 1")).one())
    ledger = ErasureLedger(tmp_path / "gdpr-ledger.jsonl")
    point = take_point(stack, migrated_url, engine)
    try:
        assert erase_user(engine, None, es, layout, person, "dpo@test", ledger=ledger).ok
        go_back(stack, point, engine)  # the recovered database has the person again
    finally:
        drop_point(stack, point)

    report = bring_in_line(settings.model_copy(update={"gdpr_ledger_file": ledger.path}), "erasure test")

    assert report.gdpr["erased"] == [person] and report.gdpr["ok"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users WHERE id = :u"), {"u": person}).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM gdpr_erasures WHERE user_id = :u"),
                            {"u": person}).scalar_one() == 1
    for name in SYNCED:  # the rebuilt indices hold the rows after the erasure: not a trace of the person
        found = documents(es, layout, name)
        assert set(found) == rows(engine, name), name
        naming = [hit["_source"] for hit in found.values() if person in json.dumps(hit["_source"])]
        assert not [doc for doc in found.values() if email in json.dumps(doc["_source"])], name
        if name != "audit_logs":
            assert naming == [], name
        else:  # only the erasure's own record of itself keeps the (pseudonymous) id, as after any erasure
            [erasure] = [doc for doc in naming if doc["action"] == "ERASURE"]
            assert {doc["transaction_id"] for doc in naming} == {erasure["transaction_id"]}
