"""What every resource of this code location shares: the settings, read once per resource."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
from pydantic import PrivateAttr

from orchestrator_data.connections import ServiceNotConfigured
from orchestrator_data.health import ServiceHealth
from orchestrator_data.settings import Settings, load_settings


class SettingsResource(dg.ConfigurableResource):
    """A field left unset falls back to the settings (environment, .env.local, .env), as the CLI does."""

    _settings: Settings | None = PrivateAttr(None)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @staticmethod
    def _health(service: str, build: Callable, check: Callable[..., ServiceHealth]) -> ServiceHealth:
        """check(build()), or an unhealthy record when the service has no URL and no local stack."""
        try:
            target = build()
        except ServiceNotConfigured as exc:
            return ServiceHealth(service=service, ok=False, error=str(exc))
        return check(target)
