"""What a run did, read back from the instance's event log: every asset and check of its job, and the
failed steps with a one-line reason each. Plain data: the CLI renders it."""

from __future__ import annotations

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
    failures: list[tuple[str, str]]  # (step, one or two lines of error)


def first_lines(text: str, lines: int = 2, width: int = 300) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][:lines]
    return " / ".join(kept)[:width]


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
            failures.append((event.step_key, failure_message(event)))
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
