"""`orchestrator-data ui`: dagster dev as a child that stops with the CLI, leaving no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request

import dagster as dg
import psutil
import pytest

from orchestrator_data.stack.common import free_port
from tests.cli.conftest import SCRIPT
from tests.conftest import PROJECT_ROOT


def _wait_for_webserver(port: int, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "ui exited before serving"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise AssertionError(f"the web UI did not answer on port {port} within {timeout_s:.0f}s")


def _run_a_job(port: int, job: str = "health_job", timeout_s: float = 120) -> None:
    """Launch `job` through the web UI's GraphQL, as the Launchpad does, and wait for it to succeed: its run
    worker prints each of its events on the `ui` terminal."""
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(job)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            assert status == dg.DagsterRunStatus.SUCCESS, f"{job} run {run_id}: {status}"
            return
        time.sleep(0.25)
    raise AssertionError(f"{job} run {run_id} did not finish within {timeout_s:.0f}s")


def _running(processes: list[psutil.Process]) -> list[str]:
    """Those still running; a zombie has exited and only waits for its new parent to reap it."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return running


@pytest.mark.integration
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_ui_stops_with_every_process_it_started(stack, tmp_path, stop_signal):
    port = free_port()
    # from the project's own directory, which holds a dagster.yaml that is not DAGSTER_HOME's
    log = open(tmp_path / "ui.log", "w+")
    process = subprocess.Popen([str(SCRIPT), "ui", "--port", str(port)], cwd=PROJECT_ROOT,
                               stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        _wait_for_webserver(port, process)
        _run_a_job(port)
        tree = psutil.Process(process.pid).children(recursive=True)
        assert len(tree) >= 3  # dagster dev, its webserver and daemon at least
        process.send_signal(stop_signal)
        process.wait(timeout=30)  # ~3 s on a quiet machine; over 10 s with the machine loaded five-fold
        assert not _running(tree), f"left running: {_running(tree)}"
    finally:
        for child in psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []:
            child.kill()
        process.kill()
        process.wait()
    log.seek(0)
    output = log.read()
    assert "will not be used" not in output
    # the terminal shows INFO and above: not a DEBUG line per event of the run, nor dagster's own warnings
    assert "Launched 1 runs" in output  # the daemon's INFO line: the run went through this terminal's processes
    debug_lines = [line for line in output.splitlines() if " - DEBUG - " in line]
    assert not debug_lines, debug_lines[:5]
    assert "Warning" not in output, output[:2000]
    assert "Traceback" not in output or stop_signal == signal.SIGINT, output[-3000:]
