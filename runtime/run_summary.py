"""What a run did, read back from the instance's event log: every asset and check of its job, and the
failed steps with a one-line reason each. Plain data: the CLI renders it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import dagster as dg

from runtime._dagster_internals import DagsterEventType

HEADLINE_VALUES = 4  # metadata values shown per asset in the summary; the rest stay in the UI


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
    failures: list[tuple[str | None, str]]  # (step, None when no step is to blame; one or two lines of error)


def first_lines(text: str, lines: int = 2, width: int = 300) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][:lines]
    return " / ".join(kept)[:width]


# a class path before an exception's message ("runtime.executors.WorkerLost: worker ..."): said by the step
CLASS_PREFIX = re.compile(r"^(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*: ")
# an executor's list of the errors of steps whose process never reported back (dagster-celery's
# "During celery execution errors occurred in workers:" lines, "[step]: error")
STEP_ERROR_LINE = re.compile(r"^\[(?P<step>[^\]\s]+)\]: (?P<error>.+)$", re.M)


def _one_line(text: str) -> str:
    return CLASS_PREFIX.sub("", first_lines(text, lines=1))


def _errors_of(error) -> list:
    """The error and what caused it, outermost first."""
    found = []
    while error is not None and len(found) < 10:
        found.append(error)
        error = error.cause or getattr(error, "context", None)
    return found


def _run_failure(records) -> tuple[str | None, dict[str, str]]:
    """Why the run failed when no step reported its own failure (a step whose worker was lost, an
    executor that broke): the run's one-line reason, and each step the error names with its reason."""
    reason, per_step = None, {}
    for record in records:
        event = record.dagster_event
        if event.event_type == DagsterEventType.RUN_CANCELED:
            return "the run was canceled", {}
        if event.event_type != DagsterEventType.RUN_FAILURE:
            continue
        error = getattr(event.event_specific_data, "error", None)
        for part in _errors_of(error):
            for match in STEP_ERROR_LINE.finditer(part.message):
                per_step.setdefault(match["step"], _one_line(match["error"]))
        # the innermost error of the project's own, not Dagster's wrappers around it
        mine = [part for part in _errors_of(error) if not part.message.startswith("dagster.")]
        if per_step:
            reason = next(iter(per_step.values()))
        elif mine:
            reason = _one_line(mine[-1].message)
        elif error is not None:
            reason = _one_line(error.message.split("\n", 1)[0])
        else:
            reason = first_lines(event.message or "the run failed")
    return reason, per_step


def failure_message(event) -> str:
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return first_lines(data.user_failure_data.description)
    error = data.error
    # the user's own exception is the cause of Dagster's "Error occurred while executing op" wrapper
    while error is not None and error.cause is not None and error.message.startswith("dagster."):
        error = error.cause
    return first_lines(error.message) if error is not None else "failed"


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


def summarize(instance: dg.DagsterInstance, run_id: str, job_def: dg.JobDefinition) -> RunSummary:
    """What the run did, read back from the instance's event log: every asset and check of the job,
    materialized/evaluated or not."""
    run = instance.get_run_by_id(run_id)
    records = instance.all_logs(run_id, of_type={
        DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION,
        DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_SKIPPED,
        DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS,
        DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED,
    })
    materialized: dict[str, Mapping] = {}
    evaluated: dict[tuple[str, str], tuple[bool, str]] = {}
    failures: list[tuple[str, str]] = []
    started: list[str] = []  # steps that began, in order
    ended: set[str] = set()
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
        elif event.event_type == DagsterEventType.STEP_START:
            started.append(event.step_key)
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_SKIPPED):
            ended.add(event.step_key)
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            ended.add(event.step_key)
            failures.append((event.step_key, failure_message(event)))
    success = run.status == dg.DagsterRunStatus.SUCCESS
    if not success:
        # a step can end without reporting it (its worker lost, its process killed): the reason is
        # then only in the run's failure; name each such step, or the run when no step is to blame
        reason, per_step = _run_failure(records)
        unfinished = [step for step in dict.fromkeys(started) if step not in ended]
        failures += [(step, per_step.get(step) or reason or "did not finish") for step in unfinished]
        failures += [(step, error) for step, error in per_step.items()
                     if step not in ended and step not in unfinished]
        if not failures:
            failures.append((None, reason or "failed"))
    asset_keys = sorted(key.to_user_string() for key in job_def.asset_layer.executable_asset_keys)
    check_keys = sorted((key.asset_key.to_user_string(), key.name)
                        for key in job_def.asset_layer.asset_graph.asset_check_keys)
    assets = [AssetOutcome(key, key in materialized, _headline(materialized.get(key, {}))) for key in asset_keys]
    checks = [CheckOutcome(asset, name, *evaluated.get((asset, name), (None, None))) for asset, name in check_keys]
    return RunSummary(
        run_id=run_id, job_name=run.job_name, success=success,
        duration_s=(max(times) - min(times)) if len(times) >= 2 else 0.0,
        assets=assets, checks=checks, failures=failures,
    )
