"""Restore over the local stack's own data directory: only with its server stopped, the old directory
moved aside (never deleted), then the stack's server started on the recovered data and the rest of
the data layer brought in line with it (recovery/aftermath.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator_data.recovery.errors import RecoveryRefused
from orchestrator_data.recovery.layout import Layout
from orchestrator_data.recovery.restore import RestoreResult, restore
from orchestrator_data.recovery.targets import Target


def restore_in_place(settings, target: Target, key_for) -> RestoreResult:
    from orchestrator_data.stack import Stack

    stack = Stack(settings)
    if stack.configured_externally("postgres"):
        raise RecoveryRefused("--in-place restores the local stack's PostgreSQL only; DATABASE_URL names another "
                              "server: restore --into a new directory and switch over (docs/recovery.md)")
    postgres = stack.service("postgres")
    if postgres.is_running():
        raise RecoveryRefused("--in-place needs the local PostgreSQL stopped: `orchestrator-data stack stop --only postgres`")
    data_dir = postgres.data_dir
    aside = data_dir.with_name(f"data.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    moved = False
    if data_dir.exists():
        data_dir.rename(aside)
        moved = True
    try:
        result = restore(Layout.from_settings(settings), target, data_dir, port=postgres.port, key_for=key_for,
                         new_cluster=False)
    except BaseException:
        if moved and not data_dir.exists():
            aside.rename(data_dir)  # nothing was restored: the old directory goes back
        raise
    result.extra["moved_aside"] = str(aside) if moved else None
    # the backup carries the settings of its day: no synchronous archiver until `stack start` brings it back
    if postgres.write_recovery_conf(stack._recovery_conf(sync_now=False)):
        postgres.reload()
    _bring_in_line(settings, f"in-place restore to {result.target}")
    return result


def _bring_in_line(settings, reason: str) -> None:
    # the one call into the aftermath (search and Redis agree with the recovered database)
    from orchestrator_data.recovery import aftermath

    aftermath.bring_in_line(settings, reason)
