"""The archiver as a service of the local stack: started after PostgreSQL in sync mode (commits wait
for the archive), known to `stack status`, stopped by `stack stop` with the server told first."""

from __future__ import annotations

import uuid

import psycopg

from orchestrator_data.recovery.layout import Layout, lsn_to_int
from orchestrator_data.recovery.status import archive_status
from orchestrator_data.recovery.server import Primary
from orchestrator_data.settings import load_settings
from orchestrator_data.stack import Stack
from tests.conftest import stack_environment


def test_stack_start_runs_the_archiver_as_a_synchronous_standby(session_dir, monkeypatch):
    root = session_dir / f"archiving-stack-{uuid.uuid4().hex[:8]}"
    for name, value in {**stack_environment(root), "WAL_ARCHIVE_MODE": "sync",
                        "RECOVERY_DIR": str(root / "recovery"), "ORCHESTRATOR_DATA_RECORD": "0"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    stack = Stack(settings)
    try:
        started = {s.name: s for s in stack.start(only=["postgres"])}
        assert started["archiver"].running and started["archiver"].pid
        url = stack.service("postgres").url("postgres")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SHOW synchronous_standby_names").fetchone()[0] == f'"{settings.wal_archive_slot}"'
            assert conn.execute("SHOW summarize_wal").fetchone()[0] == "on"
            conn.execute("CREATE TABLE t (i int)")
            conn.execute("INSERT INTO t VALUES (1)")  # returns only once the archive holds it
            committed = lsn_to_int(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
        status = archive_status(Primary(url), Layout.from_settings(settings), settings.wal_archive_slot)
        assert status.sync and status.streaming
        assert lsn_to_int(status.flushed_lsn) >= committed
        assert "archiver" in {s.name for s in stack.status() if s.running}
        stopped = stack.stop()
        assert stopped["archiver"] is True and stopped["postgres"] is True
        assert not stack.archiver().is_running()
        text = (stack.service("postgres").data_dir / "postgresql.recovery.conf").read_text()
        assert "synchronous_standby_names = ''" in text  # a later start without the archiver does not hang
    finally:
        stack.stop()
