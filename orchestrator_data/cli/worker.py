"""`orchestrator-data worker start|status`: Celery workers for runs on DAGSTER_EXECUTOR=celery.

A worker runs in this process, on this directory's settings (.env, .env.local, the environment) and
the installed code: the same code location every other process of the deployment loads.

Exit codes: 0 done (start: the worker was stopped by a signal and shut down); 1 the broker cannot be
reached, or (status) no worker answered; 2 bad input (an option, a setting, no Redis configured).
"""

from __future__ import annotations

import os
import re
from typing import Annotated

import typer
from rich.table import Table

from orchestrator_data.cli import output
from orchestrator_data.cli.choices import CELERY_LOG_LEVELS, WORKER_QUEUE
from orchestrator_data.cli.context import load_settings, service_url
from orchestrator_data.cli.dagster_env import dagster_home
from orchestrator_data.errors import BadInput, OperationFailed

app = typer.Typer(rich_markup_mode=None, help="Celery workers that run the steps of runs when DAGSTER_EXECUTOR=celery.",
                  no_args_is_help=True)

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _broker(settings) -> str:
    from orchestrator_data import workers

    return workers.broker_url(settings, service_url(settings, "redis"))


def _check_reachable(settings, url: str) -> None:
    import redis

    from orchestrator_data import connections
    from orchestrator_data.urls import mask_url

    client = connections.redis_client(settings, url, max_connections=1, socket_timeout=3, retries=0)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise OperationFailed(f"cannot reach the Celery broker at {mask_url(url)}: {type(exc).__name__}") from None
    finally:
        client.close()


def _log_level(value: str) -> str:
    """Celery's level name, checked here: Celery itself answers a bad one with a traceback."""
    level = value.strip().upper()
    if level not in CELERY_LOG_LEVELS:
        raise BadInput(f"--loglevel must be one of {', '.join(CELERY_LOG_LEVELS)}, not '{value}'")
    return level


@app.command("start")
def start(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=256,
                                             help="Steps this worker runs at once (processes).")] = 2,
    queue: Annotated[str, typer.Option("--queue", "-q", help="The queue to take steps from (a step's "
                                       "`dagster-celery/queue` tag routes it).")] = WORKER_QUEUE,
    loglevel: Annotated[str, typer.Option("--loglevel", help=f"Celery's log level: "
                                                             f"{', '.join(CELERY_LOG_LEVELS)}.")] = "INFO",
) -> None:
    """Start a worker in this process; SIGTERM or Ctrl-C stops it after its running steps (twice: at once)."""
    from orchestrator_data import workers
    from orchestrator_data.urls import mask_url

    if not QUEUE_NAME.match(queue):
        raise BadInput("--queue must be 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit")
    loglevel = _log_level(loglevel)
    settings = load_settings()
    url = _broker(settings)
    _check_reachable(settings, url)
    # the instance the steps write to comes with each task; DAGSTER_HOME keeps Dagster from warning
    os.environ.setdefault("DAGSTER_HOME", str(dagster_home(settings)))
    from runtime.celery_app import app as celery_app  # imports Dagster and the code location: only here

    name = workers.worker_name(queue)
    output.note(f"worker {name}: queue {queue}, {concurrency} process(es), broker {mask_url(url)}")
    celery_app.worker_main(["worker", f"--concurrency={concurrency}", f"--queues={queue}",
                            "--prefetch-multiplier=1", f"--hostname={name}",
                            f"--loglevel={loglevel}", "--without-mingle", "--without-gossip"])


@app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, max=60, help="Seconds to wait for answers.")] = 2.0,
) -> None:
    """List the live workers (those answering on the broker), their queues and what they run."""
    from orchestrator_data import workers
    from orchestrator_data.urls import mask_url

    settings = load_settings()
    url = _broker(settings)
    _check_reachable(settings, url)
    found = workers.live_workers(workers.control_app(url), timeout_s=timeout)
    if as_json:
        output.print_json({"broker": mask_url(url), "workers": [w.as_dict() for w in found]})
    elif found:
        table = Table(title=f"workers on {mask_url(url)}", title_justify="left")
        for column in ("worker", "pid", "processes", "queues", "running", "tasks done"):
            table.add_column(column)
        for w in found:
            table.add_row(w.name, str(w.pid or "?"), str(w.concurrency or "?"), ", ".join(w.queues),
                          "\n".join(w.active) or "idle", str(w.processed))
        output.console.print(table)
    if not found:
        output.error(f"no worker answered within {timeout:g} s on {mask_url(url)}")
        raise typer.Exit(1)
