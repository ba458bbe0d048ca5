"""A primary and a streaming standby of their own, plain PostgreSQL (no Patroni): the standby cloned with
pg_basebackup -R through a physical replication slot, on its own port and data directory (owned by the
server's OS user, mode 0700). `promote()` makes the standby the primary, as a failover would; `crash()`
stops the primary at once, as kill -9 would leave it (no shutdown checkpoint, nothing more sent).

Shared by the replication tests of the core, the CLI, the assets and the sensors."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from orchestrator_data.recovery.cluster import ScratchCluster
from orchestrator_data.recovery.server import tool
from orchestrator_data.stack.common import free_port
from orchestrator_data.stack.postgres import _prepare_permissions, _run_as
from orchestrator_data.urls import make_url

SLOT = "standby1"
APP_DATABASE = "orchestrator"


@dataclass
class Pair:
    root: Path
    primary: ScratchCluster
    standby: ScratchCluster
    slot: str = SLOT

    def url(self, server: ScratchCluster, database: str = APP_DATABASE) -> str:
        return make_url("postgresql", "127.0.0.1", server.port, username="postgres", database=database)

    def multi_host_url(self, database: str = APP_DATABASE) -> str:
        """Both servers, the writable one wanted: what a client that follows the primary is given."""
        return (f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}/{database}"
                "?target_session_attrs=read-write")

    def connect(self, server: ScratchCluster, database: str = APP_DATABASE) -> psycopg.Connection:
        return psycopg.connect(self.url(server, database), autocommit=True, connect_timeout=5)

    def wait_streaming(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            with self.connect(self.primary, "postgres") as conn:
                if conn.execute("SELECT count(*) FROM pg_stat_replication WHERE application_name = %s "
                                "AND state = 'streaming'", (self.slot,)).fetchone()[0]:
                    return
            assert time.monotonic() < deadline, "the standby did not start streaming"
            time.sleep(0.1)

    def wait_replayed(self, timeout_s: float = 30) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        with self.connect(self.primary, "postgres") as conn:
            target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout_s
        with self.connect(self.standby, "postgres") as conn:
            while conn.execute("SELECT pg_wal_lsn_diff(%s, pg_last_wal_replay_lsn()) > 0", (target,)).fetchone()[0]:
                assert time.monotonic() < deadline, "the standby did not catch up"
                time.sleep(0.05)

    def standby_receiving(self) -> bool:
        with self.connect(self.standby, "postgres") as conn:
            return bool(conn.execute("SELECT count(*) FROM pg_stat_wal_receiver").fetchone()[0])

    def pause_replay(self) -> None:
        with self.connect(self.standby, "postgres") as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def crash_primary(self) -> None:
        """The primary gone at once: no shutdown checkpoint, no last WAL sent to the standby."""
        self.primary.stop("immediate")

    def promote(self) -> None:
        """The standby made primary, a new timeline begun. A paused replay stays where it is: what it had
        not replayed is lost, as on a failover to a lagging asynchronous standby."""
        result = _run_as([tool("pg_ctl"), "-D", str(self.standby.data_dir), "-w", "-t", "60", "promote"], timeout=90)
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 30
        while True:
            with self.connect(self.standby, "postgres") as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return
            assert time.monotonic() < deadline, "the standby was not promoted"
            time.sleep(0.05)


def clone_standby(primary: ScratchCluster, data_dir: Path, slot: str = SLOT) -> ScratchCluster:
    """A standby of `primary` in `data_dir`, streaming through physical slot `slot` (created here)."""
    data_dir.mkdir(mode=0o700)
    _prepare_permissions(data_dir)
    result = _run_as([tool("pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                      "-D", str(data_dir), "-R", "-X", "stream", "-C", "-S", slot, "--checkpoint=fast", "--no-sync"],
                     timeout=120)
    assert result.returncode == 0, result.stderr
    standby = ScratchCluster(data_dir, free_port())
    with open(data_dir / "postgresql.conf", "a") as conf:
        # the primary's settings came along: its own port and socket directory, and its name on the primary
        conf.write(f"port = '{standby.port}'\nunix_socket_directories = '{data_dir}'\ncluster_name = '{slot}'\n"
                   "hot_standby_feedback = on\n")
    (data_dir / "server.log").unlink(missing_ok=True)
    standby.start()
    return standby


@contextmanager
def replication_pair(*, migrated: bool = False) -> Iterator[Pair]:
    """A scratch primary (with database `orchestrator`, migrated to head when asked) and its standby."""
    root = Path(tempfile.mkdtemp(prefix="od-replica-"))
    os.chmod(root, 0o755)
    primary = ScratchCluster.create(root / "primary", settings={"wal_keep_size": "0", "max_wal_senders": "10"})
    standby = None
    try:
        primary.start()
        with psycopg.connect(make_url("postgresql", "127.0.0.1", primary.port, username="postgres",
                                      database="postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{APP_DATABASE}"')
        if migrated:
            from orchestrator_data.postgres import migrator

            migrator.upgrade(make_url("postgresql", "127.0.0.1", primary.port, username="postgres",
                                      database=APP_DATABASE))
        standby = clone_standby(primary, root / "standby")
        pair = Pair(root, primary, standby)
        pair.wait_streaming()
        yield pair
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()
        shutil.rmtree(root, ignore_errors=True)
