"""Every private name of Dagster's packages this project uses (`dagster._…`, dagster-celery's
`_submit_task`), in one place: an upgrade that moves one breaks here, at import, and nowhere else.
Each is what a public command does inside (`dagster job launch`, `dagster api execute_run`, the UI's
re-execution, dagster-celery's executor and task)."""

from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.events import DagsterEventType
from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._grpc.impl import core_execute_run
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import unpack_value
from dagster._utils.hosted_user_process import recon_job_from_origin
from dagster_celery.executor import _submit_task as submit_celery_task

__all__ = ["DagsterEventType", "ExecuteStepArgs", "JobSubsetSelector", "ReexecutionStrategy", "RetryMode",
           "WorkspaceFileTarget", "WorkspaceProcessContext", "core_execute_run", "get_retries_config",
           "recon_job_from_origin", "submit_celery_task", "unpack_value"]
