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
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.events import DagsterEventType
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._grpc.impl import core_execute_run
from dagster._utils.hosted_user_process import recon_job_from_origin

WORKSPACE_FILE = Path(__file__).resolve().parents[1] / "workspace.yaml"
LOCATION_NAME = "orchestrator_data"
HEADLINE_VALUES = 4  # metadata values shown per asset in the summary; the rest stay in the UI


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


@dataclass
class AssetOutcome:
    key: str
    materialized: bool
    headline: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class CheckOutcome:
    asset: str
    name: str
    passed: bool | None  # None: the check did not run
    severity: str | None = None


@dataclass
class RunSummary:
    run_id: str
    job_name: str
    success: bool
    duration_s: float
    assets: list[AssetOutcome]
    checks: list[CheckOutcome]
    failures: list[tuple[str, str]]  # (step, one or two lines of error)


def _first_lines(text: str, lines: int = 2, width: int = 300) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][:lines]
    return " / ".join(kept)[:width]


def _failure_message(event) -> str:
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return _first_lines(data.user_failure_data.description)
    error = data.error
    # the user's own exception is the cause of Dagster's "Error occurred while executing op" wrapper
    while error is not None and error.cause is not None and error.message.startswith("dagster."):
        error = error.cause
    return _first_lines(error.message) if error is not None else "failed"


def _headline(metadata: Mapping[str, object]) -> list[tuple[str, str]]:
    """The first few scalar metadata values (numbers, short text, booleans); tables, JSON and
    markdown stay in the UI."""
    values = []
    for name, value in metadata.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, bool) or isinstance(raw, int):
            text = str(raw)
        elif isinstance(raw, float):
            text = f"{raw:.2f}"
        elif isinstance(raw, str) and len(raw) <= 60 and "\n" not in raw:
            text = raw
        else:
            continue
        values.append((name, text))
        if len(values) == HEADLINE_VALUES:
            break
    return values


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
        return StepUpdate(step, "failed", elapsed, _failure_message(event))
    if kind == DagsterEventType.STEP_SKIPPED:
        return StepUpdate(step, "skipped")
    if kind == DagsterEventType.STEP_UP_FOR_RETRY:
        return StepUpdate(step, "retrying", elapsed)
    return None


def summarize(instance: dg.DagsterInstance, run_id: str, job_def: dg.JobDefinition) -> RunSummary:
    """What the run did, read back from the instance's event log: every asset and check of the job,
    materialized/evaluated or not."""
    run = instance.get_run_by_id(run_id)
    records = instance.all_logs(run_id, of_type={
        DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION,
        DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS,
        DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED,
    })
    materialized: dict[str, Mapping] = {}
    evaluated: dict[tuple[str, str], tuple[bool, str]] = {}
    failures: list[tuple[str, str]] = []
    times = [r.timestamp for r in records if r.dagster_event and r.dagster_event.event_type in {
        DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE,
        DagsterEventType.RUN_CANCELED}]
    for record in records:
        event = record.dagster_event
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            materialized[materialization.asset_key.to_user_string()] = materialization.metadata
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            evaluated[(evaluation.asset_key.to_user_string(), evaluation.check_name)] = (
                evaluation.passed, evaluation.severity.value)
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            failures.append((event.step_key, _failure_message(event)))
    asset_keys = sorted(key.to_user_string() for key in job_def.asset_layer.executable_asset_keys)
    check_keys = sorted((key.asset_key.to_user_string(), key.name)
                        for key in job_def.asset_layer.asset_graph.asset_check_keys)
    assets = [AssetOutcome(key, key in materialized, _headline(materialized.get(key, {}))) for key in asset_keys]
    checks = [CheckOutcome(asset, name, *evaluated.get((asset, name), (None, None))) for asset, name in check_keys]
    return RunSummary(
        run_id=run_id, job_name=run.job_name, success=run.status == dg.DagsterRunStatus.SUCCESS,
        duration_s=(max(times) - min(times)) if len(times) >= 2 else 0.0,
        assets=assets, checks=checks, failures=failures,
    )


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
            raise CodeLocationError(_first_lines(error.message))
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
            raise InvalidRunConfig(_first_lines(str(exc), lines=4, width=600)) from None
        if from_failure is not None:
            from dagster._core.execution.plan.resume_retry import ReexecutionStrategy

            run = instance.create_reexecuted_run(
                request_context=workspace, parent_run=from_failure, code_location=location, remote_job=remote_job,
                strategy=ReexecutionStrategy.FROM_FAILURE, use_parent_run_tags=True)
            return _execute(recon_job, run, instance, job_def, on_step, on_created)
        plan = location.get_execution_plan(remote_job, run_config, step_keys_to_execute=None,
                                           known_state=None, instance=instance)
        # the same fields `dagster job launch` and the UI's launchRun give a run
        run = instance.create_run(
            job_name=job_name, run_id=None, run_config=run_config,
            resolved_op_selection=None, step_keys_to_execute=None, op_selection=None,
            status=None, root_run_id=None, parent_run_id=None, tags=remote_job.tags,
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
