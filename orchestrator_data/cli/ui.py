"""`orchestrator-data ui`: `dagster dev` on this project, as a child that stops with the CLI.

`dagster dev` shuts its webserver, daemon and code servers down on SIGINT, but dies alone on SIGTERM
and leaves them running. So it runs in a process group of its own: SIGINT or SIGTERM to the CLI
becomes SIGINT to the whole group (what Ctrl-C in a terminal does), and whatever is still alive after
a grace period is killed with the group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator_data.cli.context import load_settings
from orchestrator_data.cli.dagster_env import PROJECT_ROOT, dagster_home

GRACE_S = 7.0  # then the group is killed: nothing is left 10 s after the signal


def _signal_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
        return True
    except ProcessLookupError:
        return False


def supervise(command: list[str], env: dict[str, str], cwd: Path, grace_s: float = GRACE_S) -> int:
    """Run `command` in its own process group until it exits or the CLI is told to stop; returns its
    exit code (0 when it was stopped by a signal and shut down)."""
    child = subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True)
    stop_requested = False

    def request_stop(signum, frame):
        nonlocal stop_requested
        stop_requested = True
        _signal_group(child.pid, signal.SIGINT)

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stop_requested:
                    try:
                        code = child.wait(timeout=grace_s)
                    except subprocess.TimeoutExpired:
                        code = None
                    break
    finally:
        # dagster dev has exited or overstayed; its webserver, daemon, code servers and runs go with it
        _signal_group(child.pid, signal.SIGKILL)
        child.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if stop_requested else (code or 0)


def ui(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Web UI port.")] = 3000,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Open the Dagster web UI (dagster dev) on this project, with its storage in PostgreSQL; Ctrl-C or
    SIGTERM stops it and every process it started."""
    from orchestrator_data.settings import exported_environment

    settings = load_settings()
    home = dagster_home(settings)
    # dagster dev runs in DAGSTER_HOME, so no other dagster.yaml is in its folder (it would warn that it
    # ignores one), and gets this directory's settings through its environment instead
    env = {**exported_environment(settings), "DAGSTER_HOME": str(home)}
    # `dagster dev` warns on every start that it is superseded by `dg dev` (dagster-dg-cli, not used here)
    command = [sys.executable, "-W", "ignore:Function `dev_command` is superseded", "-m", "dagster", "dev",
               "-w", str(PROJECT_ROOT / "workspace.yaml"), "-p", str(port), "-h", host]
    raise typer.Exit(supervise(command, env, cwd=home))
