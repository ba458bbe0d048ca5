"""Loading settings and service URLs for a command, turning a bad value or a missing service into exit code 2."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from orchestrator_data.cli import output
from orchestrator_data.connections import ServiceNotConfigured, resolve_url
from orchestrator_data.settings import Settings, SettingsError, load_settings


def configuration_exit(exc: SettingsError) -> typer.Exit:
    output.error(f"configuration: {exc}")
    return typer.Exit(2)


class ConfigurationErrorsExit2(TyperGroup):
    """The root command group: a SettingsError from anywhere in a command (a variable, an env file,
    the state directory's secrets.json) becomes its one-line message and exit code 2, not a traceback."""

    def invoke(self, ctx) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            raise configuration_exit(exc) from None


def load_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise configuration_exit(exc) from None


def resolve_or_exit(settings: Settings, service: str) -> str:
    """The URL of `service`, or exit 2 saying which variable to set (or to start the stack)."""
    try:
        return resolve_url(service, settings)
    except ServiceNotConfigured as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
