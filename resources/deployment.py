"""The deployment's environment as a Dagster resource: development, testing or production. It decides
what a job may do (a reset or a seed is refused in production) and the seed's default size."""

from __future__ import annotations

from pydantic import Field

from orchestrator_data.settings import Environment
from resources._base import SettingsResource


class DeploymentResource(SettingsResource):
    environment: str | None = Field(None, description="development, testing or production (default ENVIRONMENT).")

    def name(self) -> str:
        if self.environment:
            return Environment(self.environment.strip().lower()).value
        return self.settings.environment.value
