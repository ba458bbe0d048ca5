"""Where the CLI's Dagster processes keep their instance: DAGSTER_HOME with this project's dagster.yaml."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from orchestrator_data.cli.context import service_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def dagster_home(settings) -> Path:
    """DAGSTER_HOME when the user set it, else `dagster_home` under the state directory; it holds the
    project's dagster.yaml, whose storage finds PostgreSQL as every command does (DAGSTER_PG_URL, else
    the local stack). ServiceNotConfigured (exit 2) when there is no PostgreSQL for Dagster's storage."""
    service_url(settings, "dagster")
    user_home = os.environ.get("DAGSTER_HOME")
    home = Path(user_home).absolute() if user_home else Path(settings.state_dir).absolute() / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    # our own home always gets the project's dagster.yaml; a user's home keeps theirs if present
    if not user_home or not (home / "dagster.yaml").exists():
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home
