"""The search tests' Elasticsearch client and per-test index prefix, for the GDPR tests."""

from tests.orchestrator_data.search.conftest import layout  # noqa: F401 - reused as it is (es is in tests/conftest.py)
