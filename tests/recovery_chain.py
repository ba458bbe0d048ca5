"""A WAL archive and base backups of a small cluster of their own (1 MB WAL segments), shared by a
test module: its own cluster, not the session's server, so sync mode, kills and restarts disturb
no other test. The archiver runs as users run it: `orchestrator-data recovery archiver`, a process."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

from orchestrator_data.recovery import base_backups, points
from orchestrator_data.recovery.cluster import ScratchCluster
from orchestrator_data.recovery.layout import Layout, lsn_to_int
from orchestrator_data.recovery.server import Primary
from orchestrator_data.recovery.status import archived_position, wait_archived

SCRIPT = Path(sys.executable).parent / "orchestrator-data"
SLOT = "test_archiver"
SEGMENT = 1 << 20


@dataclass
class Mark:
    """Row `i` of table marks, committed alone: the LSN and time right after its commit, its xid and
    its commit time (track_commit_timestamp), the restore point made right after it, if any."""

    i: int
    lsn: str
    after: datetime
    xid: int
    committed_at: datetime
    point: str | None = None


@dataclass
class Chain:
    root: Path
    cluster: ScratchCluster
    layout: Layout
    key: bytes
    env: dict[str, str]
    marks: list[Mark] = field(default_factory=list)
    full: base_backups.BaseBackup | None = None
    incremental: base_backups.BaseBackup | None = None
    archiver: subprocess.Popen | None = None

    @property
    def primary(self) -> Primary:
        return Primary(self.cluster.url())

    def key_for(self, key_id: str) -> bytes:
        return self.key

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.cluster.url(), autocommit=True)

    def start_archiver(self) -> subprocess.Popen:
        log = open(self.root / "archiver.out", "ab")
        self.archiver = subprocess.Popen([str(SCRIPT), "recovery", "archiver"], env={**os.environ, **self.env},
                                         stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        log.close()
        deadline = time.monotonic() + 30
        while not self.streaming():
            assert self.archiver.poll() is None, (self.root / "archiver.out").read_text()[-2000:]
            assert time.monotonic() < deadline, "the archiver did not start streaming"
            time.sleep(0.1)
        return self.archiver

    def streaming(self) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT count(*) FROM pg_stat_replication WHERE application_name = %s",
                                (SLOT,)).fetchone()[0] > 0

    def stop_archiver(self) -> None:
        if self.archiver and self.archiver.poll() is None:
            self.archiver.send_signal(signal.SIGTERM)
            self.archiver.wait(30)

    def wait_archived(self) -> None:
        with self.connect() as conn:
            lsn = lsn_to_int(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
        assert wait_archived(self.primary, SLOT, lsn, 30), f"archive stuck at {archived_position(self.primary, SLOT)}"

    def commit_mark(self, conn: psycopg.Connection, i: int) -> Mark:
        with conn.transaction():
            xid = int(conn.execute("INSERT INTO marks (i) VALUES (%s) RETURNING pg_current_xact_id()::text",
                                   (i,)).fetchone()[0])
        lsn, after, committed = conn.execute(
            "SELECT pg_current_wal_lsn()::text, clock_timestamp(), pg_xact_commit_timestamp(%s::text::xid)",
            (str(xid),)).fetchone()
        mark = Mark(i, lsn, after, xid, committed)
        self.marks.append(mark)
        return mark

    def rows(self, data_dir: Path, port: int) -> list[int]:
        with psycopg.connect(host=str(data_dir), port=port, user="postgres", dbname="postgres") as conn:
            return [row[0] for row in conn.execute("SELECT i FROM marks ORDER BY i")]


@contextmanager
def archived_chain(rows: int = 20):
    """Cluster, archiver, a full base backup, rows 1..rows/2, a WAL switch after row 5 and after row
    rows/2 (so rows 6..rows/2 sit in a segment of their own), an incremental base backup, the other rows;
    a restore point after every fifth row, and one name used twice (`twice`)."""
    root = Path(tempfile.mkdtemp(prefix="od-recovery-"))
    os.chmod(root, 0o755)
    cluster = ScratchCluster.create(root / "primary", wal_segsize_mb=1,
                                    settings={"track_commit_timestamp": "on", "wal_keep_size": "0"})
    cluster.start()
    key = os.urandom(32)
    layout = Layout(root / "recovery")
    env = {"DATABASE_URL": cluster.url(), "RECOVERY_DIR": str(layout.root), "WAL_ARCHIVE_MODE": "async",
           "WAL_ARCHIVE_SLOT": SLOT, "BACKUP_ENCRYPTION_KEY": base64.b64encode(key).decode(),
           "ORCHESTRATOR_DATA_RECORD": "0"}
    chain = Chain(root, cluster, layout, key, env)
    try:
        with chain.connect() as conn:
            conn.execute("CREATE TABLE marks (i int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
        chain.start_archiver()
        chain.full = base_backups.take_base_backup(chain.primary, layout, slot=SLOT, key=key)
        half = rows // 2
        with chain.connect() as conn:
            for i in range(1, rows + 1):
                mark = chain.commit_mark(conn, i)
                if i % 5 == 0:
                    mark.point = f"rp-{i}"
                    points.create_point(chain.primary, layout, mark.point)
                if i in (5, half):
                    conn.execute("SELECT pg_switch_wal()")
                if i == half:
                    chain.incremental = base_backups.take_base_backup(chain.primary, layout, slot=SLOT, key=key,
                                                                      incremental=True)
                if i in (7, rows - 3):
                    points.create_point(chain.primary, layout, "twice", allow_reuse=True)
        chain.wait_archived()
        yield chain
    finally:
        chain.stop_archiver()
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def stop_restored(data_dir: Path) -> None:
    from orchestrator_data.recovery.restore import stop_cluster

    stop_cluster(data_dir, immediate=True)  # removed right after: no shutdown checkpoint to wait for
    shutil.rmtree(data_dir, ignore_errors=True)
