"""A small typer app that does, on purpose, what a command may do by accident: raise, exit with a
message, warn, log, print a wide table through a Console made at import, and leave state behind.
tests/cli/test_in_process.py runs it in process and as a process and compares."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings

import typer
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)  # made at import, as orchestrator_data/cli/output.py does
app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
WIDE = "w" * 150


@app.command()
def boom() -> None:
    print("before the error")
    raise RuntimeError("boom: something escaped the command")


@app.command()
def exit_text() -> None:
    sys.exit("stopped: a message given to sys.exit")


@app.command()
def exit_code(code: int) -> None:
    raise typer.Exit(code)


@app.command()
def noisy() -> None:
    warnings.warn("a warning the command raises", UserWarning)
    logging.getLogger("sample").warning("a record logged at WARNING")
    logging.getLogger("sample").info("a record logged at INFO")


@app.command()
def table() -> None:
    grid = Table(title="wide")
    for column in ("name", "value"):
        grid.add_column(column)
    grid.add_row("wide", WIDE)
    console.print(grid)
    console.print("[red]marked up[/red]")


@app.command()
def leave_state(secret: str) -> None:
    from orchestrator_data.redaction import register_secret

    register_secret(secret)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    os.environ["SAMPLE_LEFT_BEHIND"] = "1"
    os.chdir("/")
    sys.path.append("/nonexistent-sample-path")
    logging.getLogger().addHandler(logging.StreamHandler())
    logging.getLogger("sample.fresh").addHandler(logging.StreamHandler())

    def finish() -> None:
        time.sleep(0.3)
        print("the thread finished", flush=True)

    threading.Thread(target=finish, daemon=False).start()


@app.command()
def show(name: str) -> None:
    from orchestrator_data.redaction import redact

    print(f"{name}={redact(os.environ.get(name, '<unset>'))}")
    print(f"cwd={os.getcwd()}")


@app.command()
def sleep(seconds: float) -> None:
    time.sleep(seconds)


@app.command()
def child_writes() -> None:
    import subprocess

    subprocess.run(["sh", "-c", "echo from a child on stdout; echo from a child on stderr >&2"], check=True)


def main() -> None:
    app()
