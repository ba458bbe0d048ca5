"""The CLI's progress lines: figures (rate, time left), plain lines when piped, live ones on a terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

from orchestrator_data.cli import progress
from orchestrator_data.cli.progress import StepFigures


def test_a_step_says_its_amount_rate_and_time_left():
    figures = StepFigures("rows", started=100.0, done=2_000, total=10_000)
    assert figures.describe(110.0) == "2,000 rows of 10,000 rows, 200 rows/s, 0:40 left"
    figures.done = 10_000
    assert figures.describe(150.0) == "10,000 rows of 10,000 rows, 200 rows/s, done in 0:50"
    stream = StepFigures("bytes", started=0.0, done=3 * 1024 ** 2)
    assert stream.describe(2.0) == "3.0 MiB, 1.5 MiB/s"


def test_plain_lines_come_at_a_step_start_every_few_seconds_and_at_its_end(capsys, monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 7.0, 8.0, 9.0, 9.5])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    report = progress._Plain(every_s=5.0)
    for done in (0, 10, 20, 70, 80, 100, 100):
        report("executions", done, 100, "rows")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "executions: 0 rows of 100 rows", "executions: 70 rows of 100 rows", "executions: 100 rows of 100 rows"]
    assert lines[-1].endswith("done in 0:09")


CHILD = """
import time
from orchestrator_data.cli import progress
with progress.shown() as report:
    for done in range(0, 101, 20):
        report("executions", done, 100, "rows")
        time.sleep(0.05)
"""


def test_on_a_terminal_the_line_is_live():
    main, child = pty.openpty()
    process = subprocess.Popen([sys.executable, "-c", CHILD], stdout=child, stderr=child,
                               env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(child)
    seen = b""
    while True:
        ready, _, _ = select.select([main], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    process.wait(30)
    text = seen.decode(errors="replace")
    assert "\x1b[" in text                          # redrawn in place, not a line per report
    assert "100 rows of 100 rows" in text and "done in" in text
