"""Entry points of the processes the migrator tests start (spawned, so importable by name)."""

from __future__ import annotations

import os


def upgrade_together(url: str, script_location: str | None, barrier, results) -> None:
    from orchestrator_data.postgres import migrator

    barrier.wait(timeout=60)
    try:
        report = migrator.upgrade(url, script_location=script_location)
        results.put((os.getpid(), report.applied_revisions, report.lock_wait_ms, None))
    except Exception as exc:  # reported to the test, which fails on it
        results.put((os.getpid(), [], 0, f"{type(exc).__name__}: {exc}"))


def upgrade_slowly(url: str, script_location: str) -> None:
    from orchestrator_data.postgres import migrator

    os.environ["OD_TEST_SLEEP"] = "60"  # the probe revision sleeps inside its transaction
    migrator.upgrade(url, script_location=script_location)
