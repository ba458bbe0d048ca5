"""`orchestrator-data run JOB`: a Dagster run launched through the code location, with live progress
per step and a summary at the end.

The Dagster side lives in runtime/launcher.py (this package never imports Dagster at import time); it
is imported when the command runs, in this process, so the run keeps the caller's working directory
and with it the caller's `.env`/`.env.local` and relative paths.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator_data.cli import output
from orchestrator_data.cli.context import load_settings
from orchestrator_data.cli.dagster_env import dagster_home
from orchestrator_data.errors import BadInput

STATUS_MARKS = {"running": "[yellow]…[/yellow]", "succeeded": output.OK, "failed": output.FAIL,
                "skipped": "[dim]-[/dim]", "retrying": "[yellow]↻[/yellow]"}


def read_run_config(path: Path | None) -> dict:
    """The run config YAML in `path`; BadInput (exit 2) naming the file when it cannot be used."""
    if path is None:
        return {}
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path}: no such run config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise BadInput(f"{path}: is not valid YAML{at}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise BadInput(f"{path}: run config must be a YAML mapping (ops:, resources:, ...), "
                       f"not a {type(loaded).__name__}")
    return loaded


@contextlib.contextmanager
def dagster_output_to(log_file: Path):
    """Dagster's processes (the code server, this run worker, each step's subprocess) print their own
    log lines on file descriptors 1 and 2; those go to `log_file`. Yields a stream on the terminal's
    original stdout for the progress display."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    terminal = os.fdopen(os.dup(saved[0]), "w", encoding="utf-8", errors="replace")
    try:
        yield terminal
    finally:
        terminal.flush()
        terminal.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


class StepBoard:
    """One line per step: a live table on a terminal, plain lines when piped."""

    def __init__(self, console: Console):
        self.console = console
        self.steps: dict[str, tuple[str, float, float | None, str | None]] = {}
        from rich.live import Live  # only when a run is shown: --help does not pay for it

        self.live = Live(self, console=console, refresh_per_second=4, transient=False) if console.is_terminal else None

    def __enter__(self):
        if self.live:
            self.live.start()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.stop()

    def update(self, update) -> None:
        began = self.steps.get(update.step_key, (None, time.monotonic(), None, None))[1]
        self.steps[update.step_key] = (update.status, began, update.elapsed_s, update.error)
        if self.live is None and update.status != "running":  # piped: one line per finished step
            self.console.print(self._line(update.step_key), soft_wrap=True, highlight=False)

    def _line(self, step: str) -> str:
        status, began, elapsed, error = self.steps[step]
        seconds = elapsed if elapsed is not None else time.monotonic() - began
        line = f"{STATUS_MARKS[status]} {step:<45} {status:<9} {seconds:6.1f}s"
        return line + (f"  {output.redact(error)}" if error else "")

    def __rich__(self) -> Table:
        table = Table.grid(padding=(0, 1))
        for step in self.steps:
            table.add_row(self._line(step))
        return table


def print_summary(summary, url: str) -> None:
    verdict = "[green]succeeded[/green]" if summary.success else "[red]failed[/red]"
    output.info(f"\nRun {summary.run_id} of {summary.job_name} {verdict} in {summary.duration_s:.1f}s")
    output.info("Assets:")
    for asset in summary.assets:
        if asset.materialized:
            figures = " · ".join(f"{name} {value}" for name, value in asset.headline)
            output.info(f"  {output.OK} {asset.key}" + (f"  {figures}" if figures else ""))
        else:
            output.info(f"  {output.FAIL} {asset.key}  not materialized")
    if summary.checks:
        output.info("Checks:")
    for check in summary.checks:
        if check.passed is None:
            output.info(f"  [dim]-[/dim] {check.asset}:{check.name}  did not run")
        elif check.passed:
            output.info(f"  {output.OK} {check.asset}:{check.name}  passed")
        else:
            output.info(f"  {output.FAIL} {check.asset}:{check.name}  failed ({check.severity})")
    for step, message in summary.failures:
        output.info(f"{output.FAIL} {f'step {step}' if step else 'the run'} failed: {escape(message)}")
    output.info(f"UI: {url}")


def run(
    job: Annotated[str, typer.Argument(help="The Dagster job to run.")] = "bootstrap_job",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Run config YAML file.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Stream Dagster's event log.")] = False,
    from_failure: Annotated[str | None, typer.Option(
        "--from-failure", metavar="RUN_ID", help="Re-execute this failed run of JOB from its failed and unfinished "
        "steps (with its config and tags), as the UI's \"Re-execute from failure\" does.")] = None,
) -> None:
    """Run a Dagster job through the code location (it shows under its job in the UI and can be
    re-executed there), with progress per step and a summary; exit 1 if the run fails."""
    settings = load_settings()
    run_config = read_run_config(config)
    os.environ["DAGSTER_HOME"] = str(dagster_home(settings))

    import dagster as dg

    from runtime import launcher

    log_file = Path(os.environ["DAGSTER_HOME"]) / "last-cli-run.log"
    with dg.DagsterInstance.get() as instance:
        try:
            parent = launcher.failed_run(instance, from_failure) if from_failure else None
            if parent is not None and parent.job_name != job:
                output.error(f"run {from_failure} is a run of {parent.job_name}, not of {job}")
                raise typer.Exit(2)
            if parent is not None and config is not None:
                output.error("--config cannot be given with --from-failure: the re-execution keeps the failed run's")
                raise typer.Exit(2)
            with contextlib.ExitStack() as stack:
                terminal = output.console if verbose else Console(
                    file=stack.enter_context(dagster_output_to(log_file)), highlight=False)
                board = stack.enter_context(StepBoard(terminal))
                summary = launcher.launch(job, run_config, board.update, instance, from_failure=parent)
        except (launcher.UnknownJob, launcher.NotReexecutable) as exc:
            output.error(str(exc))
            raise typer.Exit(2) from None
        except launcher.InvalidRunConfig as exc:
            output.error(f"{config or 'run config'}: not valid for {job}: {exc}")
            raise typer.Exit(2) from None
        except launcher.CodeLocationError as exc:
            output.error(f"the code location did not load: {exc} (Dagster's output: {log_file})")
            raise typer.Exit(1) from None
    print_summary(summary, f"{settings.dagster_webserver_url.rstrip('/')}/runs/{summary.run_id}")
    if not summary.success and not verbose:
        output.info(f"Stack traces: the run's page in the UI; Dagster's own output: {log_file}")
    raise typer.Exit(0 if summary.success else 1)
