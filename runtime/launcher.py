"""Running a job from the CLI through the code location, as the UI launches one.

The run is created from the workspace's code location (workspace.yaml), so it carries the same
remote origin as a run launched in the UI: it lists under its job, shows on the Overview timeline and
can be re-executed there. Its run worker then runs in this process (what `dagster api execute_run`
does in a launched run's subprocess) rather than through the run coordinator: with the
QueuedRunCoordinator a submitted run would wait for a daemon the CLI does not start. Running here also
keeps the caller's working directory, and so its `.env`/`.env.local` and relative paths.

The CLI renders what this module reports; the module returns plain data and never prints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from assets.records import CLI_SOURCE, SOURCE_TAG
from runtime._dagster_internals import (DagsterEventType, JobSubsetSelector, ReexecutionStrategy, WorkspaceFileTarget,
                                        WorkspaceProcessContext, core_execute_run, recon_job_from_origin)
from runtime.run_summary import RunSummary, failure_message, first_lines, summarize

WORKSPACE_FILE = Path(__file__).resolve().parents[1] / "workspace.yaml"
LOCATION_NAME = "orchestrator_data"
# on every run this module creates, as on the materializations the CLI records: the UI's runs list can
# filter the runs started from a terminal
CLI_TAGS = {SOURCE_TAG: CLI_SOURCE}


class UnknownJob(Exception):
    def __init__(self, name: str, jobs: list[str]):
        self.jobs = jobs
        super().__init__(f"no job named {name!r}; the jobs are: {', '.join(jobs)}")


class InvalidRunConfig(Exception):
    """The run config does not fit the job; the message is Dagster's list of problems."""


class NotReexecutable(Exception):
    """--from-failure names no run, or a run that has not failed."""


class CodeLocationError(Exception):
    """The code location did not load (e.g. an import error in definitions.py)."""


@dataclass
class StepUpdate:
    step_key: str
    status: str  # running | succeeded | failed | skipped | retrying
    elapsed_s: float | None = None
    error: str | None = None


def _step_update(event, started: dict[str, float]) -> StepUpdate | None:
    step = event.step_key
    if step is None:
        return None
    kind = event.event_type
    if kind == DagsterEventType.STEP_START:
        started[step] = time.monotonic()
        return StepUpdate(step, "running")
    elapsed = time.monotonic() - started[step] if step in started else None
    if kind == DagsterEventType.STEP_SUCCESS:
        return StepUpdate(step, "succeeded", elapsed)
    if kind == DagsterEventType.STEP_FAILURE:
        return StepUpdate(step, "failed", elapsed, failure_message(event))
    if kind == DagsterEventType.STEP_SKIPPED:
        return StepUpdate(step, "skipped")
    if kind == DagsterEventType.STEP_UP_FOR_RETRY:
        return StepUpdate(step, "retrying", elapsed)
    return None


def failed_run(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    """The run `run_id` when it can be re-executed from failure (it failed or was canceled)."""
    try:
        parent = instance.get_run_by_id(run_id)
    except Exception:  # noqa: BLE001 - a malformed id is as unknown as a missing one
        parent = None
    if parent is None:
        raise NotReexecutable(f"no run with id {run_id!r}")
    if parent.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        raise NotReexecutable(f"run {run_id} is {parent.status.value.lower()}: only a failed or canceled run is "
                              "re-executed from failure")
    return parent


def launch(job_name: str, run_config: Mapping | None, on_step: Callable[[StepUpdate], None],
           instance: dg.DagsterInstance, on_created: Callable[[str], None] = lambda run_id: None,
           from_failure: dg.DagsterRun | None = None) -> RunSummary:
    """Create the run of `job_name` from the code location and execute it here; `on_step` hears
    each step start and end as it happens. With `from_failure` (a failed run of the job), the new run
    re-executes that run's failed and unfinished steps, with its config and tags, as the UI's
    "Re-execute from failure" does. Raises UnknownJob, InvalidRunConfig or CodeLocationError before
    any run exists."""
    run_config = dict(run_config or {})
    target = WorkspaceFileTarget(paths=[str(WORKSPACE_FILE)])
    with WorkspaceProcessContext(instance, target, code_server_log_level="WARNING") as process_context:
        workspace = process_context.create_request_context()
        error = workspace.get_code_location_error(LOCATION_NAME)
        if error is not None:
            raise CodeLocationError(first_lines(error.message))
        location = workspace.get_code_location(LOCATION_NAME)
        repository = next(iter(location.get_repositories().values()))
        jobs = sorted(job.name for job in repository.get_all_jobs() if not job.name.startswith("__"))
        if job_name not in jobs:
            raise UnknownJob(job_name, jobs)
        remote_job = location.get_job(JobSubsetSelector(
            location_name=location.name, repository_name=repository.name, job_name=job_name, op_selection=None))
        recon_job = recon_job_from_origin(remote_job.get_python_origin())
        job_def = recon_job.get_definition()
        try:
            dg.validate_run_config(job_def, run_config)
        except dg.DagsterInvalidConfigError as exc:
            raise InvalidRunConfig(first_lines(str(exc), lines=4, width=600)) from None
        if from_failure is not None:
            run = instance.create_reexecuted_run(
                request_context=workspace, parent_run=from_failure, code_location=location, remote_job=remote_job,
                strategy=ReexecutionStrategy.FROM_FAILURE, use_parent_run_tags=True, extra_tags=CLI_TAGS)
            return _execute(recon_job, run, instance, job_def, on_step, on_created)
        plan = location.get_execution_plan(remote_job, run_config, step_keys_to_execute=None,
                                           known_state=None, instance=instance)
        # the same fields `dagster job launch` and the UI's launchRun give a run
        run = instance.create_run(
            job_name=job_name, run_id=None, run_config=run_config,
            resolved_op_selection=None, step_keys_to_execute=None, op_selection=None,
            status=None, root_run_id=None, parent_run_id=None, tags={**remote_job.tags, **CLI_TAGS},
            job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin(),
            asset_selection=None, asset_check_selection=None, asset_graph=repository.asset_graph,
        )
        return _execute(recon_job, run, instance, job_def, on_step, on_created)


def _execute(recon_job, run: dg.DagsterRun, instance: dg.DagsterInstance, job_def: dg.JobDefinition,
             on_step: Callable[[StepUpdate], None], on_created: Callable[[str], None]) -> RunSummary:
    on_created(run.run_id)
    instance.report_engine_event(f"Started process for run (pid: {os.getpid()}), from the orchestrator-data CLI.", run)
    started: dict[str, float] = {}
    try:
        for event in core_execute_run(recon_job, run, instance, inject_env_vars=False):
            update = _step_update(event, started)
            if update is not None:
                on_step(update)
    except Exception:  # noqa: BLE001 - core_execute_run has recorded the failure on the run
        pass
    return summarize(instance, run.run_id, job_def)
