"""The data layer's own figures: collected from PostgreSQL, Redis and Elasticsearch into the
system_metrics index (docs/system-metrics.md). No Dagster here: the `system_metrics` asset and
`orchestrator-data metrics collect` both call `run.collect_and_write`."""

from orchestrator_data.metrics.run import MetricsReport, collect_and_write
from orchestrator_data.metrics.samples import MetricsError, Reading, Sample, rates

__all__ = ["MetricsError", "MetricsReport", "Reading", "Sample", "collect_and_write", "rates"]
