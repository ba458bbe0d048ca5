"""The names and defaults that --help shows, spelled here so that --help imports no driver.

Each is the core's own value, copied: the modules that define them import SQLAlchemy, the
Elasticsearch client or pydantic. tests/cli/test_startup.py checks that every copy still equals its
source, so they cannot drift apart."""

from __future__ import annotations

# search.indices.NAMES
SEARCH_INDICES = ("workflows", "executions", "audit_logs", "system_metrics", "marketplace")
# search.sources.SYNCED: the indices fed from PostgreSQL
SYNCED_INDICES = ("workflows", "executions", "marketplace", "audit_logs")
# search.full_load.PARTITIONED: the indices loaded by month
PARTITIONED_INDICES = ("executions", "audit_logs")
# stack.SERVICES
STACK_SERVICES = ("postgres", "redis", "elasticsearch")
# workers.DEFAULT_QUEUE
WORKER_QUEUE = "dagster"
# backups.workdirs.DEFAULT_GRACE, in hours
TEMP_GRACE_HOURS = 1.0
# Celery's log levels (celery.utils.log's LOG_LEVELS names)
CELERY_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL")
