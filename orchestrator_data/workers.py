"""Celery workers: where their broker lives, how they take tasks, and who is alive.

With DAGSTER_EXECUTOR=celery a run's steps are Celery tasks that `orchestrator-data worker start`
processes execute. Broker and result backend are the Redis server of REDIS_URL, in the database
DAGSTER_CELERY_REDIS_DB, password included (never printed: every URL shown goes through mask_url).

No Dagster here: runtime/celery_app.py builds the Celery app from `celery_app_args`, and
runtime/executors.py the executor.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator_data import urls
from orchestrator_data.settings import Settings, SettingsError

DEFAULT_QUEUE = "dagster"
# An unacknowledged task goes back to the queue after this long (Redis transport). Tasks are
# acknowledged when they end (acks_late), so this must outlast the longest step, or a step still
# running would be handed to a second worker. A worker that dies is noticed far sooner by the
# executor's watchdog (runtime/executors.py), which fails the step.
VISIBILITY_TIMEOUT_S = 12 * 3600
# How long a finished step's result (its serialized events) stays in the backend for the run to read.
RESULT_EXPIRES_S = 24 * 3600


def broker_url(settings: Settings, redis_url: str) -> str:
    """REDIS_URL (the configured or the local stack's) with the Celery database in place of its own.
    Raises SettingsError when both would be the same database, or the URL is a unix socket."""
    parsed = urls.parse_redis_url(redis_url)
    if parsed.scheme == "unix":
        raise SettingsError("REDIS_URL", "is a unix:// socket URL; Celery workers need a redis:// or rediss:// "
                                         "URL (workers on other machines reach Redis over TCP)")
    own = int(parsed.path.removeprefix("/") or parsed.param("db") or 0)
    if own == settings.dagster_celery_redis_db:
        raise SettingsError("DAGSTER_CELERY_REDIS_DB", f"is {own}, the database REDIS_URL already uses; "
                                                       "give Celery a database of its own (e.g. 1)")
    query = tuple((k, v) for k, v in parsed.query if k != "db")
    return parsed.replace(path=f"/{settings.dagster_celery_redis_db}", query=query).render()


def celery_config() -> dict[str, Any]:
    """Celery's settings for the executor and the workers alike (both must agree)."""
    return {
        # a task is acknowledged when it ends, and each worker process reserves one task at a time:
        # long steps never sit behind another step on a busy worker while an idle one waits
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        # STARTED is recorded with the worker's name: the executor's watchdog asks that worker
        "task_track_started": True,
        "result_expires": RESULT_EXPIRES_S,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
        "result_backend_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "task_default_queue": DEFAULT_QUEUE,
    }


def worker_name(queue: str) -> str:
    """A unique node name that says where the worker runs: `orchestrator-data-<queue>-<pid>@<host>`."""
    return f"orchestrator-data-{queue}-{os.getpid()}@{socket.gethostname()}"


@dataclass
class WorkerInfo:
    name: str
    pid: int | None
    concurrency: int | None
    queues: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)  # what each busy process runs (step keys or task names)
    processed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def control_app(broker: str):
    """A Celery app that only talks to the workers (no task, no Dagster import): fast to build."""
    from celery import Celery

    return Celery("orchestrator-data-control", broker=broker, set_as_current=False,
                  config_source={"broker_connection_retry_on_startup": False})


def live_workers(app, timeout_s: float = 2.0) -> list[WorkerInfo]:
    """Every worker that answers on the broker within `timeout_s`, with what it is doing."""
    inspector = app.control.inspect(timeout=timeout_s)
    stats = inspector.stats() or {}
    if not stats:
        return []
    queues = inspector.active_queues() or {}
    active = inspector.active() or {}
    workers = []
    for name, info in sorted(stats.items()):
        pool = info.get("pool") or {}
        workers.append(WorkerInfo(
            name=name,
            pid=info.get("pid"),
            concurrency=pool.get("max-concurrency"),
            queues=sorted(q.get("name", "") for q in queues.get(name, [])),
            active=[_task_label(task) for task in active.get(name, [])],
            processed=sum((info.get("total") or {}).values()),
        ))
    return workers


def _task_label(task: dict) -> str:
    """A Dagster step task's step keys, else the task's name."""
    kwargs = task.get("kwargs") or {}
    packed = kwargs.get("execute_step_args_packed") if isinstance(kwargs, dict) else None
    if isinstance(packed, dict):
        keys = packed.get("step_keys_to_execute") or []
        run_id = packed.get("run_id", "")
        if keys:
            return f"{', '.join(keys)} (run {run_id[:8]})"
    return str(task.get("name", "?"))
