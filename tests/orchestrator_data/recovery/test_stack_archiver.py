"""The archiver as a service of the local stack: started after PostgreSQL in sync mode (commits wait
for the archive), known to `stack status`, stopped by `stack stop` with the server told first; then an
in-place restore of the stack's own data directory to a restore point."""

from __future__ import annotations

import sys
import types
import uuid

import psycopg
import pytest

from orchestrator_data.recovery import keying
from orchestrator_data.recovery.base_backups import take_base_backup
from orchestrator_data.recovery.errors import RecoveryRefused
from orchestrator_data.recovery.in_place import restore_in_place
from orchestrator_data.recovery.layout import Layout, lsn_to_int
from orchestrator_data.recovery.points import create_point
from orchestrator_data.recovery.targets import Target
from orchestrator_data.recovery.status import archive_status
from orchestrator_data.recovery.server import Primary
from orchestrator_data.settings import load_settings
from orchestrator_data.stack import Stack
from tests.conftest import stack_environment


@pytest.fixture
def aftermath_calls(monkeypatch):
    """recovery/aftermath.py is another branch's module: what the in-place restore hands it is recorded here."""
    calls = []
    module = types.ModuleType("orchestrator_data.recovery.aftermath")
    module.bring_in_line = lambda settings, reason: calls.append(reason)
    monkeypatch.setitem(sys.modules, "orchestrator_data.recovery.aftermath", module)
    import orchestrator_data.recovery as package

    monkeypatch.setattr(package, "aftermath", module, raising=False)
    return calls


def test_stack_start_runs_the_archiver_as_a_synchronous_standby(session_dir, monkeypatch, aftermath_calls):
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
        primary = Primary(url)
        take_base_backup(primary, Layout.from_settings(settings), slot=settings.wal_archive_slot,
                         key=keying.current_key(settings))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO t VALUES (2)")
            create_point(primary, Layout.from_settings(settings), "after-2")
            conn.execute("INSERT INTO t VALUES (3)")
        with pytest.raises(RecoveryRefused, match="stopped"):
            restore_in_place(settings, Target("name", name="after-2"), keying.key_lookup(settings))
        stopped = stack.stop()
        assert stopped["archiver"] is True and stopped["postgres"] is True
        assert not stack.archiver().is_running()
        text = (stack.service("postgres").data_dir / "postgresql.recovery.conf").read_text()
        assert "synchronous_standby_names = ''" in text  # a later start without the archiver does not hang
        result = restore_in_place(settings, Target("name", name="after-2"), keying.key_lookup(settings))
        with psycopg.connect(url, autocommit=True) as conn:
            assert [row[0] for row in conn.execute("SELECT i FROM t ORDER BY i")] == [1, 2]
        aside = result.extra["moved_aside"]
        assert aside and (stack.service("postgres").data_dir.parent / aside.rsplit("/", 1)[-1] / "PG_VERSION").exists()
        assert aftermath_calls == ["in-place restore to restore point 'after-2'"]
    finally:
        stack.stop()
