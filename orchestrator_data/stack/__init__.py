"""The embedded default stack: real PostgreSQL, Redis and Elasticsearch servers started locally."""

from orchestrator_data.stack.common import ServiceStatus, StackError
from orchestrator_data.stack.manager import SERVICES, Endpoints, Stack, missing_endpoint_message

__all__ = ["SERVICES", "Endpoints", "ServiceStatus", "Stack", "StackError", "missing_endpoint_message"]
