"""The local HA pair on the real servers: etcd and two Patroni members started by `stack start --standby`
(once for the module, synchronous replication), a standby that streams, the primary killed -9 under a
writer, a planned switchover from the CLI, and `stack stop` leaving no process behind."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from orchestrator_data.replication.drill import TABLE, PrimaryWatcher, Writer, prepare_table, run_drill
from orchestrator_data.settings import load_settings
from orchestrator_data.stack import Stack
from orchestrator_data.stack.common import free_port, port_in_use
from tests.cli import in_process

pytestmark = pytest.mark.integration


def cli(*args: str, env: dict | None = None):
    return in_process.invoke(in_process.console_script(), args, env=env, timeout=300)


def _two_free_ports() -> int:
    """A free port whose next one is free too (member 2 listens on base + 1)."""
    for _ in range(100):
        port = free_port()
        if port < 65535 and not port_in_use(port + 1):
            return port
    raise AssertionError("no two consecutive free ports")


def _processes_naming(root: Path) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(root) in cmdline:
            found.append(cmdline[:120])
    return found


@pytest.fixture(scope="module")
def ha(isolated_environment):
    root = Path(tempfile.mkdtemp(prefix="od-ha-"))
    environment = {"ORCHESTRATOR_DATA_HOME": str(root / "state"), "STACK_POSTGRES_PORT": str(_two_free_ports()),
                   "STACK_PATRONI_PORT": str(_two_free_ports()), "STACK_ETCD_PORT": str(_two_free_ports()),
                   "REPLICATION_MODE": "sync", "ENVIRONMENT": "testing",
                   # the stack then manages PostgreSQL alone: these two count as configured elsewhere
                   "REDIS_URL": "redis://127.0.0.1:1/0", "ELASTICSEARCH_URL": "http://127.0.0.1:1"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        started = cli("stack", "start", "--standby")
        try:
            assert started.returncode == 0, started.stderr
            stack = Stack(load_settings())
            yield stack, started, root
        finally:
            Stack(load_settings()).stop()
            shutil.rmtree(root, ignore_errors=True)


def _cluster(ha):
    stack, _, _ = ha
    return stack.service("postgres").ha


def test_the_stack_starts_a_pair_whose_standby_streams_what_the_primary_commits(ha):
    stack, started, _ = ha
    assert "pg1:" in started.stdout and "pg2:" in started.stdout
    shown = cli("stack", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    [postgres] = [s for s in json.loads(shown.stdout)["services"] if s["name"] == "postgres"]
    members = postgres["detail"]["ha"]["members"]
    assert sorted((m["role"], m["state"]) for m in members) == [("leader", "running"), ("sync_standby", "streaming")]
    assert len({m["timeline"] for m in members}) == 1
    # `status` too (Redis and Elasticsearch are unreachable here: exit 1, the pair is shown all the same)
    health = cli("status", "--json", "--skip-search")
    assert [(m["name"], m["role"]) for m in json.loads(health.stdout)["ha"]["members"]] == \
        [(m["name"], m["role"]) for m in members]
    secrets = json.loads((Path(stack.root) / "secrets.json").read_text())
    assert not [name for name, value in secrets.items() if value in shown.stdout + started.stdout + health.stdout]
    logs = "".join(path.read_text(errors="replace") for path in (Path(stack.root) / "ha").rglob("*.log"))
    assert "bootstrap" in logs or "initdb" in logs  # the members' logs are there to be read
    assert not [name for name, value in secrets.items() if value in logs]

    cluster = _cluster(ha)
    standby = next(m for m in cluster.cluster() if not m.is_leader)
    with psycopg.connect(cluster.conninfo("orchestrator"), autocommit=True) as conn:
        conn.execute("CREATE TABLE streamed (v text)")
        conn.execute("INSERT INTO streamed VALUES ('from the primary')")
    deadline = time.monotonic() + 10
    with psycopg.connect(cluster.member_conninfo(standby.name, "orchestrator"), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        while True:
            if conn.execute("SELECT to_regclass('streamed') IS NOT NULL").fetchone()[0]:
                rows = conn.execute("SELECT v FROM streamed").fetchall()
                if rows:
                    break
            assert time.monotonic() < deadline, "the standby did not replay the primary's commit"
            time.sleep(0.05)
    assert rows == [("from the primary",)]


def test_the_primary_killed_under_a_writer_is_replaced_and_rejoins_with_no_acknowledged_commit_lost(ha):
    cluster = _cluster(ha)
    result = run_drill(cluster, kind="postgres", rate=200, before_s=1.0, timeout_s=60, rejoin_timeout_s=120)
    assert result.new_primary != result.old_primary
    assert result.commits_acknowledged > 100
    assert result.commits_lost == 0  # synchronous standby
    assert result.writes_resumed_s <= 10  # CloudNativePG's own bound; Patroni's defaults take 30-45 s
    assert result.rejoin_s is not None  # the old primary streams again on the new timeline
    assert result.two_primaries_rounds == 0 and result.watcher_rounds > 10
    members = {m.name: m for m in cluster.cluster()}
    assert members[result.new_primary].is_leader
    assert members[result.old_primary].state == "streaming"
    assert members[result.old_primary].timeline == members[result.new_primary].timeline


def test_a_planned_switchover_from_the_cli_hands_over_without_two_primaries_or_a_lost_commit(ha):
    cluster = _cluster(ha)
    cluster.wait_healthy(60)
    before = cluster.leader()
    standby = next(m.name for m in cluster.cluster() if not m.is_leader)

    dry = cli("recovery", "failover")
    assert dry.returncode == 2
    assert f"would switch over from {before.name}" in dry.stdout
    assert dry.stderr.strip().count("\n") == 0 and "--confirm" in dry.stderr
    unknown = cli("recovery", "failover", "--confirm", "--to", "pg9")
    assert unknown.returncode == 2 and "no member named 'pg9'" in unknown.stderr
    assert cluster.leader().name == before.name  # neither changed anything

    prepare_table(cluster)
    # what every process of the project resolves: the stack's URL names both members, read-write wanted;
    # an engine made before the switch (a daemon's, a worker's) follows the primary after it
    from orchestrator_data import connections, urls

    stack_url = connections.resolve_url("postgres", load_settings())
    assert [port for _, port in urls.parse_postgres_url(stack_url).hosts] == [before.port, cluster.member(standby).spec.pg_port]
    assert urls.parse_postgres_url(stack_url).param("target_session_attrs") == "read-write"
    kept = connections.postgres_engine(load_settings(), pool_size=1, max_overflow=0)
    with kept.connect() as conn:
        assert conn.exec_driver_sql("SELECT inet_server_port()").scalar() == before.port
    watcher, writer = PrimaryWatcher(cluster), Writer(cluster.conninfo(), rate=100)
    watcher.start()
    writer.start()
    try:
        done = cli("recovery", "failover", "--confirm", "--to", standby)
        assert done.returncode == 0, done.stderr
        assert f"switched over from {before.name} to {standby}" in done.stdout
        deadline = time.monotonic() + 20
        while not any(c.port != before.port for c in writer.acknowledged[-20:]):
            assert time.monotonic() < deadline and writer.error is None, "writes did not resume"
            time.sleep(0.05)
    finally:
        writer.stop()
        watcher.stop()
    assert cluster.leader().name == standby
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        held = {row[0] for row in conn.execute(f"SELECT n FROM {TABLE}")}
    assert [c.n for c in writer.acknowledged if c.n not in held] == []
    assert watcher.two_primaries == 0 and watcher.rounds > 10
    with kept.connect() as conn:
        assert conn.exec_driver_sql("SELECT inet_server_port(), pg_is_in_recovery()").one() == (
            cluster.leader().port, False)
    kept.dispose()


def _roles() -> list[str]:
    shown = json.loads(cli("stack", "status", "--json").stdout)
    [postgres] = [s for s in shown["services"] if s["name"] == "postgres"]
    return sorted(m["role"] for m in postgres["detail"]["ha"]["members"])


def test_a_changed_replication_mode_reaches_the_running_pair_on_stack_start(ha):
    _cluster(ha).wait_healthy(60)  # after the tests before: a synchronous standby again
    assert _roles() == ["leader", "sync_standby"]
    for mode, standby_role in (("async", "replica"), ("sync", "sync_standby")):
        started = cli("stack", "start", env={"REPLICATION_MODE": mode})
        assert started.returncode == 0, started.stderr
        assert f"({mode} replication)" in started.stdout
        deadline = time.monotonic() + 15
        while _roles() != ["leader", standby_role]:  # Patroni applies it within a loop or two
            assert time.monotonic() < deadline, (mode, _roles())
            time.sleep(0.2)


def test_stack_stop_stops_etcd_patroni_and_every_server_of_the_pair(ha):
    _, _, root = ha
    assert _processes_naming(root)  # the pair runs: what follows can fail
    stopped = cli("stack", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "postgres: stopped" in stopped.stdout
    deadline = time.monotonic() + 10
    while _processes_naming(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_naming(root) == []
    assert cli("stack", "status").returncode == 1


def test_failover_without_a_pair_is_refused_in_one_line(tmp_path):
    refused = cli("recovery", "failover", "--confirm",
                  env={"ORCHESTRATOR_DATA_HOME": str(tmp_path / "no-stack"), "DATABASE_URL": None})
    assert refused.returncode == 2
    assert "no HA cluster runs" in refused.stderr and refused.stderr.strip().count("\n") == 0
