"""Where a run's steps execute, chosen by DAGSTER_EXECUTOR (docs/deploy.md).

- multiprocess: each step in a subprocess of the run's process (one machine; the default).
- celery: each step a Celery task, executed by `orchestrator-data worker start` processes on any machine
  that reaches Redis (dagster-celery's executor and execution loop, paired with the pinned dagster).

dagster-celery waits for a step's result for as long as it takes, so a worker that dies mid-step (the
machine lost, the process SIGKILLed) would leave the run waiting forever. The executor here watches the
workers that run its steps: a step whose worker stops answering on the broker is failed, naming the
worker, so the run ends and can be re-executed from failure (every step is safe to run twice).
"""

from __future__ import annotations

import time

import dagster as dg
from dagster_celery.core_execution_loop import core_celery_execution_loop
from dagster_celery.executor import CeleryExecutor

from orchestrator_data import connections, workers
from orchestrator_data.settings import Executor, Settings, load_settings
from runtime._dagster_internals import RetryMode, get_retries_config, submit_celery_task

# consecutive unanswered pings before a worker counts as gone (a busy broker can drop one); they are
# DAGSTER_CELERY_WORKER_TIMEOUT_S apart in all
MISSED_PINGS = 3
PING_TIMEOUT_S = 1.0


class WorkerLost(Exception):
    pass


class LiveWorkers:
    """Which workers running this run's steps still answer: one broadcast ping at most every
    `ping_every_s` for all steps at once; a worker is gone after MISSED_PINGS unanswered in a row."""

    def __init__(self, app, ping_every_s: float, clock=time.monotonic):
        self._app = app
        self._ping_every_s = ping_every_s
        self._clock = clock
        self._asked_at = float("-inf")
        self._missed: dict[str, int] = {}  # every worker asked about so far -> pings missed in a row

    def gone(self, name: str) -> bool:
        self._missed.setdefault(name, 0)
        now = self._clock()
        if now - self._asked_at >= self._ping_every_s:
            self._asked_at = now
            alive = {worker for reply in self._app.control.ping(timeout=PING_TIMEOUT_S) or [] for worker in reply}
            for worker in self._missed:
                self._missed[worker] = 0 if worker in alive else self._missed[worker] + 1
        return self._missed[name] >= MISSED_PINGS


class WatchedResult:
    """A step's Celery result that also becomes ready, as a failure, when the worker running it is gone."""

    def __init__(self, result, step_key: str, live: LiveWorkers):
        self._result = result
        self._step_key = step_key
        self._live = live
        self._lost: str | None = None

    def ready(self) -> bool:
        if self._lost or self._result.ready():
            return True
        info = self._result.info if self._result.state == "STARTED" else None
        worker = info.get("hostname") if isinstance(info, dict) else None
        if worker and self._live.gone(worker):
            self._lost = f"{worker} (pid {info.get('pid')})"
            self._result.revoke()  # should it come back, it must not run the step again for this run
            return True
        return False

    def get(self):
        if self._lost:
            raise WorkerLost(
                f"worker {self._lost} stopped answering while it ran step {self._step_key}; the step may have "
                f"done part of its work. Every step is safe to run twice: re-execute the run from failure.")
        return self._result.get()

    def revoke(self) -> None:
        self._result.revoke()


class WatchedCeleryExecutor(CeleryExecutor):
    def __init__(self, *args, worker_timeout_s: float = 15.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.worker_timeout_s = worker_timeout_s

    def execute(self, plan_context, execution_plan):
        live: LiveWorkers | None = None

        def submit(app, context, step, queue, priority, known_state):
            nonlocal live
            live = live or LiveWorkers(app, self.worker_timeout_s / MISSED_PINGS)
            return WatchedResult(submit_celery_task(app, context, step, queue, priority, known_state), step.key, live)

        return core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=submit)


def _watched_executor(settings: Settings, retries: RetryMode) -> WatchedCeleryExecutor:
    url = workers.broker_url(settings, connections.resolve_url("redis", settings))
    return WatchedCeleryExecutor(retries=retries, broker=url, backend=url, config_source=workers.celery_config(),
                                 worker_timeout_s=settings.dagster_celery_worker_timeout_s)


def celery_app_args(settings: Settings) -> dict:
    """The Celery app's arguments, for the executor and the workers alike (they must agree)."""
    return _watched_executor(settings, RetryMode(RetryMode.DISABLED)).app_args()


@dg.executor(name="celery", config_schema={"retries": get_retries_config()},
             requirements=dg.multiple_process_executor_requirements())
def celery_executor(init_context) -> WatchedCeleryExecutor:
    """dagster-celery's executor on the Redis of REDIS_URL (database DAGSTER_CELERY_REDIS_DB), watching
    its workers. The broker URL is built here, in the run's process, from its settings: it is never
    part of a run's config, so its password never reaches the UI."""
    return _watched_executor(load_settings(), RetryMode.from_config(init_context.executor_config["retries"]))


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    # multiprocess: Dagster's own default (subprocesses per step; execute_in_process still works)
    return celery_executor if settings.dagster_executor is Executor.CELERY else dg.multi_or_in_process_executor
