"""Loading settings and service URLs for a command, turning a bad value or a missing service into exit code 2."""

from __future__ import annotations

import typer

from orchestrator_data.cli import output
from orchestrator_data.connections import ServiceNotConfigured, resolve_url
from orchestrator_data.settings import Settings, SettingsError, load_settings


def load_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        output.error(f"configuration: {exc}")
        raise typer.Exit(2) from None


def resolve_or_exit(settings: Settings, service: str) -> str:
    """The URL of `service`, or exit 2 saying which variable to set (or to start the stack)."""
    try:
        return resolve_url(service, settings)
    except ServiceNotConfigured as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
