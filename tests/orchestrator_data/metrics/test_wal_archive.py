"""The RPO and the recovery window as system_metrics samples, read from the session's recovery chain
(tests/recovery_chain.py): lag from the server, the window from the base backups and the archive's names."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator_data.metrics.wal_archive import SERVICE, ArchiveProbe, collect, probe_of
from orchestrator_data.recovery.layout import Layout, lsn_to_int, segment_name
from orchestrator_data.settings import load_settings
from tests.recovery_chain import SEGMENT, SLOT

pytestmark = pytest.mark.integration


def test_the_lag_and_the_window_from_the_oldest_base_backup_to_now(recovery_chain):
    chain = recovery_chain
    chain.wait_archived()
    now = datetime.now(UTC)
    figures = collect(ArchiveProbe(chain.cluster.url(), str(chain.layout.root), SLOT), now)
    assert figures.lag_bytes is not None and 0 <= figures.lag_bytes < SEGMENT
    assert figures.lag_seconds is not None and figures.lag_seconds < 60
    assert figures.window_from == chain.full.finished_at and figures.gaps == 0
    assert chain.full.finished_at < figures.window_to <= now + timedelta(seconds=1)
    assert figures.window_days == pytest.approx((figures.window_to - figures.window_from).total_seconds() / 86400)
    by_metric = {s.metric: s for s in figures.samples}
    assert set(by_metric) == {"archive_lag_bytes", "archive_lag_seconds", "recovery_window_days",
                              "recovery_window_from", "recovery_window_to"}
    assert {s.service for s in figures.samples} == {SERVICE} and by_metric["archive_lag_bytes"].labels == {"slot": SLOT}
    assert by_metric["recovery_window_from"].value == chain.full.finished_at.timestamp()


def test_a_gap_moves_the_window_to_the_first_base_backup_after_it(recovery_chain):
    chain = recovery_chain
    copy = Layout(chain.root / "metrics-gap")
    shutil.copytree(chain.layout.wal, copy.wal, copy_function=os.link)
    shutil.copytree(chain.layout.base, copy.base)
    shutil.copy(chain.layout.archive_info, copy.archive_info)
    seventh = next(m for m in chain.marks if m.i == 7)   # between the full and the incremental base backup
    missing = segment_name(1, lsn_to_int(seventh.lsn) // SEGMENT, SEGMENT)
    next(p for p in copy.wal.iterdir() if p.name.startswith(missing)).unlink()
    figures = collect(ArchiveProbe(chain.cluster.url(), str(copy.root), SLOT))
    assert figures.gaps == 1 and figures.window_from == chain.incremental.finished_at


def test_no_probe_when_the_archive_is_off(monkeypatch):
    monkeypatch.setenv("WAL_ARCHIVE_MODE", "off")
    assert probe_of(load_settings(), "postgresql://x@localhost/db") is None
    monkeypatch.setenv("WAL_ARCHIVE_MODE", "async")
    probe = probe_of(load_settings(), "postgresql://x@localhost/db")
    assert probe is not None and probe.slot == load_settings().wal_archive_slot
