"""`orchestrator-data ui`: dagster dev as a child that stops with the CLI, leaving no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request

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
            time.sleep(1)
    raise AssertionError(f"the web UI did not answer on port {port} within {timeout_s:.0f}s")


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
        tree = psutil.Process(process.pid).children(recursive=True)
        assert len(tree) >= 3  # dagster dev, its webserver and daemon at least
        process.send_signal(stop_signal)
        process.wait(timeout=10)
        assert not _running(tree), f"left running: {_running(tree)}"
    finally:
        for child in psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []:
            child.kill()
        process.kill()
        process.wait()
    log.seek(0)
    output = log.read()
    assert "will not be used" not in output
    assert "Traceback" not in output or stop_signal == signal.SIGINT, output[-3000:]
