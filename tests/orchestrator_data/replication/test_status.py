"""Replication observed on a real primary and its streaming standby (tests/replication_pair.py)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from orchestrator_data.metrics import replication as replication_metrics
from orchestrator_data.postgres import client as pg
from orchestrator_data.replication.status import observe, observe_engine, summary_lines
from orchestrator_data.stack.common import Secrets
from orchestrator_data.stack.postgres import PostgresService


@pytest.fixture
def pair(standby_pair):
    return standby_pair


def _write_wal(conn, rows: int = 2000) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS filler (i int, pad text)")
    conn.execute("INSERT INTO filler SELECT g, repeat('x', 200) FROM generate_series(1, %s) g", (rows,))


def test_the_primary_shows_its_standby_slot_and_timeline(pair):
    with pair.connect(pair.primary) as conn:
        status = observe(conn)
    assert status.role == "primary" and status.timeline == 1 and status.is_primary
    assert status.server == f"127.0.0.1:{pair.primary.port}"
    [standby] = status.standbys
    assert standby.application_name == pair.slot and standby.state == "streaming"
    assert standby.sync_state == "async" and standby.slot_name == pair.slot
    assert standby.replay_behind_bytes is not None and standby.replay_behind_bytes >= 0
    [slot] = status.slots
    assert slot.slot_name == pair.slot and slot.active and slot.slot_type == "physical"
    assert slot.retained_bytes is not None and slot.retained_bytes >= 0
    record = status.as_dict()
    assert record["standbys"][0]["kind"] == "standby" and record["wal_receivers"] == []


def test_a_paused_standby_falls_behind_by_what_the_primary_wrote_since(pair):
    pair.wait_replayed()
    pair.pause_replay()
    try:
        with pair.connect(pair.primary) as conn:
            _write_wal(conn)
            conn.execute("SELECT pg_switch_wal()")  # nothing held back on the primary's side
        seen_from_primary = None
        for _ in range(100):  # until the standby reports the flush
            with pair.connect(pair.primary) as conn:
                seen_from_primary = observe(conn)
            standby = seen_from_primary.standbys[0]
            if standby.flush_behind_bytes == 0 and standby.replay_behind_bytes > 100_000:
                break
            time.sleep(0.05)
        standby = seen_from_primary.standbys[0]
        assert standby.flush_behind_bytes == 0, "the standby received and flushed the WAL"
        assert standby.replay_behind_bytes > 100_000, "but did not replay it"
        [slot] = seen_from_primary.slots
        # a physical slot holds what its standby has not flushed, not what it has not replayed
        assert 0 <= slot.retained_bytes < standby.replay_behind_bytes
        with pair.connect(pair.standby) as conn:
            seen = observe(conn)
        assert seen.role == "standby" and seen.replay_paused is True and seen.timeline == 1
        assert seen.upstream is not None and seen.upstream.status == "streaming"
        assert seen.upstream.sender_port == pair.primary.port and seen.upstream.slot_name == pair.slot
        assert any("replay paused" in line for line in summary_lines(seen))
        lines = summary_lines(seen_from_primary)
        assert lines[0].startswith("replication: primary on timeline 1")
        assert any(line.strip().startswith(f"standby {pair.slot} streaming async") for line in lines)
        samples = {(s.metric, s.labels.get("standby") or s.labels.get("slot")): s.value
                   for s in replication_metrics.samples(seen_from_primary)}
        assert samples[("replication_standbys", None)] == 1
        assert samples[("replication_replay_lag_bytes", pair.slot)] == standby.replay_behind_bytes
        assert ("replication_slot_retained_bytes", pair.slot) in samples
        assert replication_metrics.worst(seen_from_primary)["pg_replication_replay_lag_bytes"] > 100_000
    finally:
        with pair.connect(pair.standby) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
    pair.wait_replayed()


def test_health_carries_the_role_and_the_replication_only_when_there_is_some(pair, engine):
    paired = pg.create_engine(pair.url(pair.primary), pool=pg.PoolOptions(size=1, max_overflow=0))
    try:
        health = pg.check_health(paired)
    finally:
        paired.dispose()
    assert health.ok and health.detail["role"] == "primary" and health.detail["timeline"] == 1
    assert [s["application_name"] for s in health.detail["replication"]["standbys"]] == [pair.slot]
    alone = pg.check_health(engine)  # the session's server: no standby of its own
    assert alone.detail["role"] == "primary" and alone.detail["timeline"] >= 1
    assert observe_engine(engine).standbys == []


def test_the_stack_status_shows_the_replication_of_a_server_with_a_standby(pair, tmp_path):
    service = PostgresService(tmp_path, pair.primary.port, Secrets(tmp_path / "secrets.json"))
    service.is_running = lambda: True  # the scratch primary stands in for the stack's server
    service._pid = lambda: None
    service.url = lambda database="orchestrator": pair.url(pair.primary, database)
    record = service.status().public()
    assert record["running"] and record["detail"]["replication"]["role"] == "primary"
    assert record["detail"]["replication"]["standbys"][0]["application_name"] == pair.slot


def test_a_standby_answers_as_a_standby_through_sqlalchemy(pair):
    engine = sa.create_engine(pg.urls.sqlalchemy_url(pair.url(pair.standby)))
    try:
        status = observe_engine(engine)
    finally:
        engine.dispose()
    assert status.role == "standby" and status.standbys == [] and status.has_replication
    assert status.upstream is not None and status.upstream.received_tli == 1


def test_a_server_that_hides_replication_is_still_healthy(engine, monkeypatch):
    """A managed service may refuse a view or function the observation reads: the health check and the
    metrics carry on without it, and say why."""
    from orchestrator_data.replication import status as replication_status

    monkeypatch.setattr(replication_status, "QUERY", "SELECT * FROM pg_no_such_view")
    health = pg.check_health(engine)
    assert health.ok and "role" not in health.detail
    assert "pg_no_such_view" in health.detail["replication_error"]
    with engine.connect() as conn:
        assert replication_status.observe_or_why(conn)[0] is None
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1  # the savepoint kept the transaction usable
