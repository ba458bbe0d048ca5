"""Progress of long commands on a terminal: a live line per step with its rate and the time left; when
stdout is not a terminal, plain lines instead — one when a step starts, one every few seconds, one when
it ends — so a log file or a CI job shows where the work is without a single control character."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.progress import BarColumn, Progress, ProgressColumn, TaskID, TextColumn
from rich.text import Text

from orchestrator_data.cli import output
from orchestrator_data.progress import Report
from orchestrator_data.units import human_bytes

PLAIN_EVERY_S = 5.0
MEASURED_AFTER_S = 0.2


def _amount(value: float, unit: str) -> str:
    return human_bytes(value) if unit == "bytes" else f"{value:,.0f} {unit}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


@dataclass
class StepFigures:
    """What a step's line says: done (of total), rate, time left — from its own start."""

    unit: str
    started: float = field(default_factory=time.monotonic)
    done: float = 0
    total: float | None = None

    def rate(self, now: float) -> float:
        elapsed = now - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def describe(self, now: float) -> str:
        amount = _amount(self.done, self.unit) + (f" of {_amount(self.total, self.unit)}" if self.total else "")
        rate = self.rate(now)
        figures = [amount]
        if now - self.started >= MEASURED_AFTER_S:  # a first report has no rate yet, rather than "0/s"
            figures.append(f"{human_bytes(rate)}/s" if self.unit == "bytes" else f"{rate:,.0f} {self.unit}/s")
        if self.total and self.done >= self.total:
            figures.append(f"done in {_duration(now - self.started)}")
        elif self.total and rate > 0:
            figures.append(f"{_duration((self.total - self.done) / rate)} left")
        return ", ".join(figures)


class _FiguresColumn(ProgressColumn):
    def render(self, task) -> Text:
        figures: StepFigures = task.fields["figures"]
        return Text(figures.describe(time.monotonic()))


class _Live:
    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def __call__(self, step: str, done: float, total: float | None, unit: str) -> None:
        with self.lock:  # a backup reports from two threads (the dump and the checksums)
            if step not in self.tasks:
                self.tasks[step] = self.progress.add_task(step, total=total, figures=StepFigures(unit))
            figures: StepFigures = self.progress.tasks[self.tasks[step]].fields["figures"]
            figures.done, figures.total = done, total
            self.progress.update(self.tasks[step], completed=done, total=total)


class _Plain:
    def __init__(self, every_s: float):
        self.every_s = every_s
        self.steps: dict[str, StepFigures] = {}
        self.printed: dict[str, float] = {}
        self.finished: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, step: str, done: float, total: float | None, unit: str) -> None:
        with self.lock:
            now = time.monotonic()
            figures = self.steps.setdefault(step, StepFigures(unit, started=now))
            figures.done, figures.total = done, total
            finished = total is not None and done >= total
            if step in self.finished or (not finished and step in self.printed
                                         and now - self.printed[step] < self.every_s):
                return
            self.printed[step] = now
            if finished:
                self.finished.add(step)
            output.info(f"{step}: {figures.describe(now)}")


@contextmanager
def shown(every_s: float = PLAIN_EVERY_S) -> Iterator[Report]:
    """A progress report to pass to the core: live lines on a terminal, plain lines otherwise."""
    if not sys.stdout.isatty():
        yield _Plain(every_s)
        return
    with Progress(TextColumn("{task.description:<12}"), BarColumn(), _FiguresColumn(),
                  console=output.console, transient=False) as progress:
        yield _Live(progress)
