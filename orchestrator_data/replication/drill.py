"""A failover drill on an HA pair: a writer commits numbered rows through the multi-host connection string,
the primary is killed (-9), and the drill measures what a user of the database lives through:

- writes resumed: from the last commit acknowledged by the old primary to the first one by the new primary;
- commits lost: rows whose commit was acknowledged but which the new primary does not hold;
- rejoin: from the kill to the old primary streaming again as a standby on the new timeline;
- two primaries: rounds of a watcher (one persistent connection per member) in which more than one member
  accepted writes (not in recovery, not read-only) at the same time.

Never run against the configured database: the drill makes its own table on the pair it is given, which
`dr_drill_job` and bench/failover.py build from scratch for the purpose."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass

import psycopg

from orchestrator_data.errors import OperationFailed
from orchestrator_data.replication.engine import HACluster
from orchestrator_data.replication.patroni_api import PatroniApiError

TABLE = "failover_drill"
KINDS = ("postgres", "member")


class DrillFailed(OperationFailed):
    subject = "failover drill"


@dataclass
class Commit:
    n: int
    at: float  # time.monotonic() when the commit was acknowledged
    port: int  # the server that acknowledged it


@dataclass
class DrillResult:
    kind: str
    old_primary: str
    new_primary: str
    writes_resumed_s: float
    commits_acknowledged: int
    commits_lost: int
    uncertain_commits: int  # a commit whose outcome never reached the writer (it may or may not be there)
    rejoin_s: float | None
    two_primaries_rounds: int
    watcher_rounds: int
    failed_attempts: int = 0
    commits_per_s: float = 0.0  # the writer's rate on the old primary, before the kill

    def as_dict(self) -> dict:
        return asdict(self)


class Writer(threading.Thread):
    """Commits row n = first, first + step, ... one per transaction, through the multi-host string; after an error it
    reconnects (libpq finds the new primary) and goes on with the next n. Paced to `rate` commits/s."""

    def __init__(self, conninfo: str, rate: float | None = None, *, first: int = 1, step: int = 1):
        super().__init__(daemon=True, name="drill-writer")
        self.conninfo = conninfo
        self.interval = 1.0 / rate if rate else 0.0
        self.first, self.step = first, step  # writers side by side number their rows apart
        self.acknowledged: list[Commit] = []
        self.uncertain: list[int] = []
        self.failed_attempts = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        n, conn, port = self.first - self.step, None, 0
        next_at = time.monotonic()
        try:
            while not self.stopping.is_set():
                if conn is None:
                    try:
                        conn = psycopg.connect(self.conninfo, autocommit=True)
                        port = int(conn.info.port)
                    except psycopg.OperationalError:
                        self.failed_attempts += 1
                        time.sleep(0.05)
                        continue
                n += self.step
                try:
                    conn.execute(f"INSERT INTO {TABLE} (n) VALUES (%s)", (n,))
                except psycopg.Error:
                    # the commit may have happened before the connection broke: not counted as acknowledged
                    self.uncertain.append(n)
                    self.failed_attempts += 1
                    _close(conn)
                    conn = None
                    continue
                self.acknowledged.append(Commit(n, time.monotonic(), port))
                if self.interval:
                    next_at += self.interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        self.stopping.wait(delay)
                    else:
                        next_at = time.monotonic()
        except BaseException as exc:  # reported by the drill, not lost in a thread
            self.error = exc
        finally:
            if conn is not None:
                _close(conn)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


class WriterGroup:
    """`count` writers side by side (row numbers interleaved), sharing the rate; read as one writer."""

    def __init__(self, conninfo: str, rate: float | None, count: int):
        self.writers = [Writer(conninfo, rate / count if rate else None, first=i + 1, step=count)
                        for i in range(count)]

    def start(self) -> None:
        for writer in self.writers:
            writer.start()

    def stop(self) -> None:
        for writer in self.writers:
            writer.stopping.set()
        for writer in self.writers:
            writer.join(30)

    @property
    def acknowledged(self) -> list[Commit]:
        return [c for writer in self.writers for c in writer.acknowledged]

    @property
    def uncertain(self) -> list[int]:
        return [n for writer in self.writers for n in writer.uncertain]

    @property
    def failed_attempts(self) -> int:
        return sum(writer.failed_attempts for writer in self.writers)

    @property
    def error(self) -> BaseException | None:
        return next((writer.error for writer in self.writers if writer.error is not None), None)

    def any_acknowledged_by_another(self, port: int) -> bool:
        return any(c.port != port for writer in self.writers for c in writer.acknowledged[-5:])


class PrimaryWatcher(threading.Thread):
    """Asks every member, round after round, whether it accepts writes; counts rounds with two."""

    def __init__(self, cluster: HACluster, interval: float = 0.05):
        super().__init__(daemon=True, name="drill-watcher")
        self.cluster = cluster
        self.interval = interval
        self.rounds = 0
        self.two_primaries = 0
        self.stopping = threading.Event()
        self.connections: dict[str, psycopg.Connection | None] = {m.name: None for m in cluster.members}

    def _writable(self, name: str) -> bool:
        conn = self.connections[name]
        try:
            if conn is None:
                conn = self.connections[name] = psycopg.connect(self.cluster.member_conninfo(name), autocommit=True)
            in_recovery, read_only = conn.execute(
                "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only') = 'on'").fetchone()
            return not in_recovery and not read_only
        except psycopg.Error:
            if conn is not None:
                _close(conn)
            self.connections[name] = None
            return False

    def run(self) -> None:
        while not self.stopping.is_set():
            writable = sum(self._writable(name) for name in self.connections)
            self.rounds += 1
            if writable > 1:
                self.two_primaries += 1
            self.stopping.wait(self.interval)
        for conn in self.connections.values():
            if conn is not None:
                _close(conn)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


def _close(conn: psycopg.Connection) -> None:
    try:
        conn.close()
    except Exception:  # a broken connection may fail even to close
        pass


def prepare_table(cluster: HACluster) -> None:
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (n bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")


def wait_rejoined(cluster: HACluster, name: str, timeout_s: float) -> bool:
    """True once `name` streams from the leader on the leader's timeline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            members = cluster.cluster()
        except PatroniApiError:
            members = []
        leader = next((m for m in members if m.is_leader and m.state == "running"), None)
        mine = next((m for m in members if m.name == name), None)
        if leader and mine and leader.name != name and mine.state == "streaming" and mine.timeline == leader.timeline:
            return True
        time.sleep(0.1)
    return False


def run_drill(cluster: HACluster, *, kind: str = "postgres", rate: float | None = 200.0, before_s: float = 1.0,
              timeout_s: float = 60.0, rejoin_timeout_s: float = 60.0, writers: int = 4) -> DrillResult:
    """Kill the primary (-9) under a writer and measure. `kind`: `postgres` kills the primary's server
    (Patroni stays and fails over at once, primary_start_timeout 0); `member` kills Patroni and the
    server together (the leader key then has to expire: up to ttl), and starts the member again once a
    new primary runs, as a supervisor would. `rate` (commits/s) is shared by `writers` connections side by
    side: one connection alone waits a round trip to the standby per commit in sync mode."""
    if kind not in KINDS:
        raise DrillFailed(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
    cluster.wait_healthy(timeout_s)
    old = cluster.leader()
    old_port = old.port
    old_member = cluster.member(old.name)
    prepare_table(cluster)
    watcher = PrimaryWatcher(cluster)
    writer = WriterGroup(cluster.conninfo(), rate, writers)
    watcher.start()
    writer.start()
    try:
        time.sleep(before_s)
        if not writer.acknowledged:
            raise DrillFailed(f"the writer committed nothing in {before_s} s before the kill")
        killed_at = time.monotonic()
        if kind == "postgres":
            old_member.kill_postgres()
        else:
            old_member.kill()
        deadline = killed_at + timeout_s
        while time.monotonic() < deadline and writer.error is None:
            if writer.any_acknowledged_by_another(old_port):
                break
            time.sleep(0.05)
        else:
            raise DrillFailed(f"writes did not resume on another member within {timeout_s:.0f} s"
                              + (f" ({type(writer.error).__name__})" if writer.error else ""))
        new = cluster.leader()
        if kind == "member":
            old_member.wait_gone()
            old_member.start()  # a supervisor (systemd) restarts the member
        rejoined = wait_rejoined(cluster, old.name, rejoin_timeout_s)
        rejoin_s = time.monotonic() - killed_at if rejoined else None
        time.sleep(0.2)  # a few commits on the new primary with the old one back
    finally:
        writer.stop()
        watcher.stop()
    if writer.error is not None:
        raise DrillFailed(f"the writer failed: {type(writer.error).__name__}: {writer.error}")
    acknowledged = sorted(writer.acknowledged, key=lambda c: c.at)
    on_old = [c for c in acknowledged if c.port == old_port]
    on_new = [c for c in acknowledged if c.port != old_port and c.at > killed_at]
    resumed = on_new[0].at - on_old[-1].at
    span = on_old[-1].at - on_old[0].at
    rate_seen = (len(on_old) - 1) / span if span > 0 else 0.0
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        held = {row[0] for row in conn.execute(f"SELECT n FROM {TABLE}")}
    lost = sum(1 for c in writer.acknowledged if c.n not in held)
    return DrillResult(kind=kind, old_primary=old.name, new_primary=new.name, writes_resumed_s=round(resumed, 3),
                       commits_acknowledged=len(writer.acknowledged), commits_lost=lost,
                       uncertain_commits=len(writer.uncertain), rejoin_s=round(rejoin_s, 3) if rejoin_s else None,
                       two_primaries_rounds=watcher.two_primaries, watcher_rounds=watcher.rounds,
                       failed_attempts=writer.failed_attempts, commits_per_s=round(rate_seen, 1))
