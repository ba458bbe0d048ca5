"""The kind of the next scheduled base backup (recovery/cadence.py): full when there is nothing to build
on, when the newest full is older than a week, or when the incrementals since it add up to the share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator_data.recovery.base_backups import BaseBackup
from orchestrator_data.recovery.cadence import next_kind

NOW = datetime(2026, 12, 2, 1, 30, tzinfo=UTC)


def _backup(n: int, kind: str, size: int, parent: str | None = None, days_ago: float = 1) -> BaseBackup:
    at = NOW - timedelta(days=days_ago)
    return BaseBackup(id=f"b{n}", path=Path(f"/nowhere/b{n}"), kind=kind, parent=parent, timeline=1, start_lsn=n,
                      end_lsn=n + 1, started_at=at, finished_at=at, size_bytes=size, sha256="", key_id=None,
                      system_identifier="1", manifest={})


def _kind(backups, share=0.5, days=7):
    return next_kind(backups, NOW, full_every_days=days, chain_share=share)


def test_nothing_to_build_on_is_a_full_one():
    assert _kind([]).kind == "full"


def test_incremental_until_the_chain_reaches_its_share_of_the_full():
    full = _backup(1, "full", 1000, days_ago=3)
    first = _backup(2, "incremental", 200, "b1", days_ago=2)
    second = _backup(3, "incremental", 299, "b2", days_ago=1)
    assert _kind([full]).kind == "incremental"
    assert _kind([full, first, second]).kind == "incremental"      # 499 of 1000
    third = _backup(4, "incremental", 1, "b3", days_ago=0.5)
    decision = _kind([full, first, second, third])                 # 500 of 1000
    assert decision.kind == "full" and "50%" in decision.reason and decision.chain_bytes == 500
    assert _kind([full, first, second, third], share=0.6).kind == "incremental"


def test_only_the_newest_chain_counts_and_a_week_old_full_is_replaced():
    old_full = _backup(1, "full", 1000, days_ago=9)
    old_incremental = _backup(2, "incremental", 900, "b1", days_ago=8)
    full = _backup(3, "full", 1000, days_ago=2)
    assert _kind([old_full, old_incremental, full]).kind == "incremental"
    assert "older than 7 days" in _kind([old_full, old_incremental]).reason
