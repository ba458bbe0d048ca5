"""Loading settings for a command, turning a bad value into exit code 2."""

from __future__ import annotations

import typer

from orchestrator_data.cli import output
from orchestrator_data.settings import Settings, SettingsError, load_settings


def load_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        output.error(f"configuration: {exc}")
        raise typer.Exit(2) from None
