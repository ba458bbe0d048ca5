"""The search tests' Elasticsearch client and per-test index prefix, for the GDPR tests."""

from tests.orchestrator_data.search.conftest import es, layout  # noqa: F401 - fixtures reused as they are
