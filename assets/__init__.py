"""Dagster assets and asset checks. Thin: they call the core through resources and record metadata."""

from assets.health import check_service_latency, check_service_versions, service_health

ASSETS = [service_health]
ASSET_CHECKS = [check_service_versions, check_service_latency]

__all__ = ["ASSETS", "ASSET_CHECKS"]
