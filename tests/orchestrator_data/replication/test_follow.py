"""Clients follow the primary (replication/follow.py): work cut off by a lost connection runs again when
it is safe to repeat, a write cut off is reported in one line; on a real failover, the CLI and the search
sync wait for the new primary and carry on, and search and Redis agree with it after it lost commits."""

from __future__ import annotations

import subprocess
import threading
import time

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.replication import postgres_replication

from orchestrator_data.backups._pg import split_password, tool, tool_env
from orchestrator_data.errors import OperationFailed
from orchestrator_data.postgres import client as pg
from orchestrator_data.postgres.seed import seed
from orchestrator_data.postgres.seed_data import SeedPlan
from orchestrator_data.redis.execution_state import ExecutionStateStore
from orchestrator_data.redis.keyspace import EXECUTION_STATUS
from orchestrator_data.replication.follow import (WriteCutOff, is_cut_off, reporting_now, run_again_if_cut_off,
                                                  write_once)
from orchestrator_data.search import sync
from orchestrator_data.search.indices import Layout, drop_indices
from orchestrator_data.search.sources import SYNCED
from tests.cli.conftest import invoke_cli
from tests.orchestrator_data.search.test_history import change_everything
from tests.replication_pair import replication_pair
from resources import PostgresResource
from tests.search_contents import documents, rows


def _cut_off_once(engine, calls: list):
    def work():
        with engine.begin() as conn:
            calls.append(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar())
            if len(calls) == 1:  # the server ends this session, as a failover ends every session
                conn.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
            return conn.execute(sa.text("SELECT 42")).scalar()
    return work


def test_work_safe_to_repeat_runs_again_and_a_write_cut_off_says_so_in_one_line(migrated_url):
    engine = pg.create_engine(migrated_url, pool=pg.PoolOptions(size=1, max_overflow=0), reconnect_timeout_s=10)
    try:
        calls: list = []
        assert run_again_if_cut_off(engine, _cut_off_once(engine, calls), "a test read") == 42
        assert len(calls) == 2 and calls[0] != calls[1]  # the second run on a new session
        with pytest.raises(WriteCutOff) as caught:
            write_once(_cut_off_once(engine, []), "the insert of one row")
        message = str(caught.value)
        assert isinstance(caught.value, OperationFailed) and "\n" not in message
        assert message.startswith("the insert of one row: the connection to PostgreSQL was lost during the write")
        assert "not repeated" in message
    finally:
        engine.dispose()


def test_an_engine_waits_for_a_primary_for_its_budget_only(migrated_url):
    """No host answering: retried for the budget (DATABASE_RECONNECT_TIMEOUT_S), then the driver's error; a
    wrong database name is not a failover and fails at once."""
    gone = "postgresql://postgres@127.0.0.1:1,127.0.0.1:2/x?target_session_attrs=read-write"
    engine = pg.create_engine(gone, reconnect_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError) as caught:
        engine.connect()
    assert 1.0 <= time.monotonic() - started < 6 and is_cut_off(caught.value)
    engine.dispose()
    with reporting_now(), pytest.raises(sa.exc.OperationalError):  # a health check never waits
        started = time.monotonic()
        engine.connect()
    assert time.monotonic() - started < 1.0
    missing = pg.create_engine(migrated_url.rsplit("/", 1)[0] + "/no_such_database", reconnect_timeout_s=30)
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError) as caught:
        missing.connect()
    assert time.monotonic() - started < 5 and not is_cut_off(caught.value)
    missing.dispose()
    engine.dispose()


@pytest.fixture
def failover_setup(stack, es, redis_client):
    """A migrated primary and its standby of their own (promoted here), search under a prefix of the test's."""
    layout = Layout(prefix=f"f{int(time.time() * 1000) % 10**9}")
    with replication_pair(migrated=True) as pair:
        # DATABASE_RECONNECT_TIMEOUT_S unset: a multi-host URL waits for a primary (30 s) by default
        env = {"DATABASE_URL": pair.multi_host_url(), "SEARCH_INDEX_PREFIX": layout.prefix}
        try:
            yield pair, layout, env
        finally:
            drop_indices(es, layout)


def test_after_a_failover_to_a_lagging_standby_the_cli_and_search_follow_the_new_primary(
        failover_setup, es, redis_client):
    pair, layout, env = failover_setup
    primary = pg.create_engine(pair.url(pair.primary), pool=pg.PoolOptions(size=2, max_overflow=0))
    seed(primary, "testing", SeedPlan(executions=30))
    sync.create_indices(primary, es, layout)
    first = invoke_cli("search", "sync", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    pair.wait_replayed()

    # the standby stops receiving (its WAL receiver cut), so what the primary commits now never reaches it
    with pair.connect(pair.standby, "postgres") as conn:
        conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 30
    while pair.standby_receiving():
        assert time.monotonic() < deadline, "the standby kept streaming"
        time.sleep(0.1)
    after = change_everything(primary)
    ExecutionStateStore(redis_client).update(after["inserted"], status="running", progress=40)
    synced = invoke_cli("search", "sync", env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert after["inserted"] in documents(es, layout, "executions")  # search now holds a commit about to be lost
    primary.dispose()

    pair.crash_primary()
    promoter = threading.Timer(1.5, pair.promote)  # the failover completes while the CLI waits for a primary
    promoter.start()
    try:
        followed = invoke_cli("search", "sync", env=env, timeout=120)
    finally:
        promoter.join()
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "the primary changed (timeline 1 -> 2" in followed.stderr
    assert "commits after the branch point were lost" in followed.stderr

    new_primary = pg.create_engine(pair.url(pair.standby), pool=pg.PoolOptions(size=2, max_overflow=0))
    try:
        for name in SYNCED:  # search holds exactly the new primary's rows: nothing of the lost commits
            assert set(documents(es, layout, name)) == rows(new_primary, name), name
        assert after["inserted"] not in documents(es, layout, "executions")
        assert after["deleted"] in documents(es, layout, "executions")  # its delete was lost: the row is back
        assert documents(es, layout, "workflows")[after["renamed"]]["_source"]["name"] != "renamed after the point"
        assert not redis_client.exists(EXECUTION_STATUS.key(execution_id=after["inserted"]))

        status = invoke_cli("status", "--json", "--skip-search", env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert '"role": "primary"' in status.stdout and '"timeline": 2' in status.stdout
        assert f'"server": "127.0.0.1:{pair.standby.port}"' in status.stdout

        # libpq's own tools take the multi-host URL as it is, the password kept out of argv
        connstr, password = split_password(pair.multi_host_url())
        psql = subprocess.run([str(tool("psql")), connstr, "-Atc", "SELECT pg_is_in_recovery(), inet_server_port()"],
                              capture_output=True, text=True, env=tool_env(password), timeout=30)
        assert psql.returncode == 0 and psql.stdout.strip() == f"f|{pair.standby.port}", psql.stderr

        # a Dagster run given the same URL observes the new primary
        observed = dg.materialize([postgres_replication],
                                  resources={"postgres": PostgresResource(database_url=pair.multi_host_url())})
        metadata = observed.get_asset_materialization_events()[0].materialization.metadata
        assert metadata["primary"].value == f"127.0.0.1:{pair.standby.port}" and metadata["timeline"].value == 2

        again = invoke_cli("search", "sync", env=env)  # once per failover: the stamps now name timeline 2
        assert again.returncode == 0 and "primary changed" not in again.stderr, again.stderr
    finally:
        new_primary.dispose()


def test_only_a_replicated_url_waits_for_a_primary_by_default():
    from orchestrator_data.connections import default_reconnect_timeout

    assert default_reconnect_timeout("postgresql://u@db1:5432,db2:5432/app") == 30.0
    assert default_reconnect_timeout("postgresql://u@proxy:5432/app?target_session_attrs=read-write") == 30.0
    assert default_reconnect_timeout("postgresql://u@db1:5432/app") == 0.0
