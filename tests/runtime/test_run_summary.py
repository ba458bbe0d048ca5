"""The run summary names every failed step with a one-line reason, whatever failed the run: a step that
raised (its own STEP_FAILURE), or a step whose worker was lost (the reason only in the run's failure)."""

from __future__ import annotations

import sys

import dagster as dg
from dagster._core.errors import DagsterSubprocessError
from dagster._core.events import DagsterEvent, DagsterEventType, JobFailureData
from dagster._core.execution.plan.objects import StepSuccessData
from dagster._utils.error import serializable_error_info_from_exc_info

from runtime.executors import WorkerLost
from runtime.run_summary import summarize


@dg.asset
def first():
    return 1


@dg.asset(deps=[first])
def second():
    raise RuntimeError("the second asset broke\nwith a second line\nand a third")


JOB = dg.define_asset_job("summary_test_job", selection=[first, second])
DEFS = dg.Definitions(assets=[first, second], jobs=[JOB])


def test_a_step_that_raises_is_named_with_its_error():
    job = DEFS.resolve_job_def("summary_test_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        summary = summarize(instance, result.run_id, job)
    assert not summary.success
    assert summary.failures == [("second", "RuntimeError: the second asset broke / with a second line")]
    assert [(a.key, a.materialized) for a in summary.assets] == [("first", True), ("second", False)]


def _report(instance, run, event_type: DagsterEventType, step: str | None = None, data=None, message=""):
    instance.report_dagster_event(DagsterEvent(
        event_type_value=event_type.value, job_name=run.job_name, step_key=step, event_specific_data=data,
        message=message), run.run_id)


def test_a_step_whose_worker_was_lost_is_named_with_the_reason_from_the_run_failure():
    """What the watched Celery executor leaves in the event log when a worker dies mid-step: the step
    started and never ended; the run's failure carries dagster-celery's list of step errors."""
    job = DEFS.resolve_job_def("summary_test_job")
    lost = ("worker celery-node-4242@host (pid 4242) stopped answering while it ran step second; the step may "
            "have done part of its work. Every step is safe to run twice: re-execute the run from failure.")
    with dg.DagsterInstance.ephemeral() as instance:
        run = instance.create_run_for_job(job)
        _report(instance, run, DagsterEventType.RUN_START)
        for step in ("first", "second"):
            _report(instance, run, DagsterEventType.STEP_START, step)
        _report(instance, run, DagsterEventType.STEP_SUCCESS, "first", StepSuccessData(duration_ms=5.0))
        try:
            try:
                raise WorkerLost(lost)
            except WorkerLost:
                worker_error = serializable_error_info_from_exc_info(sys.exc_info())
            raise DagsterSubprocessError("During celery execution errors occurred in workers:\n"
                                         f"[second]: {worker_error.to_string()}", subprocess_error_infos=[worker_error])
        except DagsterSubprocessError:
            error = serializable_error_info_from_exc_info(sys.exc_info())
        _report(instance, run, DagsterEventType.RUN_FAILURE, data=JobFailureData(error, None, None),
                message='Execution of run for "summary_test_job" failed. An exception was thrown during execution.')
        summary = summarize(instance, run.run_id, job)
    assert not summary.success
    [(step, reason)] = summary.failures
    assert step == "second" and reason.startswith("worker celery-node-4242@host (pid 4242) stopped answering")
    assert "\n" not in reason and "WorkerLost" not in reason and "Stack Trace" not in reason


def test_a_run_that_failed_before_any_step_says_why_in_one_line():
    job = DEFS.resolve_job_def("summary_test_job")
    with dg.DagsterInstance.ephemeral() as instance:
        run = instance.create_run_for_job(job)
        _report(instance, run, DagsterEventType.RUN_START)
        try:
            raise ConnectionError("the broker at redis://127.0.0.1:1/0 refused the connection")
        except ConnectionError:
            error = serializable_error_info_from_exc_info(sys.exc_info())
        _report(instance, run, DagsterEventType.RUN_FAILURE, data=JobFailureData(error, None, None),
                message="Execution of run failed.")
        summary = summarize(instance, run.run_id, job)
    assert summary.failures == [(None, "ConnectionError: the broker at redis://127.0.0.1:1/0 refused the connection")]
