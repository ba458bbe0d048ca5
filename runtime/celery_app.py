"""The Celery app the workers run (`celery -A runtime.celery_app`, which `orchestrator-data worker start`
does): dagster-celery's step task on this deployment's broker and settings.

A step's task is acknowledged when it ends, so a task whose worker died is handed out again once the
broker's visibility timeout passes. By then the executor has failed that step and the run has ended:
such a task, or any task of a run that has ended, is dropped instead of running the step once more
beside a re-execution.
"""

from __future__ import annotations

import logging

import celery
from dagster import DagsterInstance
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from orchestrator_data.settings import load_settings
from runtime._dagster_internals import ExecuteStepArgs, unpack_value
from runtime.executors import celery_app_args

log = logging.getLogger(__name__)


def run_ended(execute_step_args_packed: dict) -> str | None:
    """The status of the task's run when that run has ended, else None."""
    args = unpack_value(execute_step_args_packed, as_type=ExecuteStepArgs)
    with DagsterInstance.from_ref(args.instance_ref) as instance:
        run = instance.get_run_by_id(args.run_id)
    if run is None or run.is_finished:
        return run.status.value if run else "deleted"
    return None


class StepTask(celery.Task):
    def __call__(self, *args, **kwargs):
        ended = run_ended(kwargs["execute_step_args_packed"])
        if ended:
            log.warning("dropped a step task of a run that has ended (%s); the run's re-execution runs it", ended)
            return []
        return super().__call__(*args, **kwargs)


app = make_app(celery_app_args(load_settings()))
execute_plan = create_task(app, base=StepTask)
