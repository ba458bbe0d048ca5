"""The CLI starts at once: importing it loads typer and rich, never a driver, the settings' pydantic or
Dagster (each command imports what it needs when it runs). Needs no server."""

from __future__ import annotations

import subprocess
import sys

from orchestrator_data import __version__
from orchestrator_data.cli import choices
from tests.cli.conftest import SCRIPT

# what made `orchestrator-data --help` take 1.4 s before each command imported its own
HEAVY = ("sqlalchemy", "elasticsearch", "alembic", "psycopg", "psycopg2", "pydantic", "dagster", "redis",
         "cryptography")


def _imported_at_start() -> set[str]:
    """The top-level packages `import orchestrator_data.cli.main` loads, from Python's own -X importtime."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import orchestrator_data.cli.main"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert len(lines) > 50 and lines[-1].rstrip().endswith("orchestrator_data.cli.main"), result.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines}


def test_importing_the_cli_loads_no_driver_pydantic_or_dagster():
    loaded = _imported_at_start()
    assert {"typer", "rich", "orchestrator_data"} <= loaded
    assert sorted(loaded.intersection(HEAVY)) == []


def test_help_renders_without_typers_rich_help():
    """Typer's rich help (typer.rich_utils) imports markdown-it and rich's traceback machinery: about as much
    as the whole CLI. Every command group asks for plain help (rich_markup_mode=None)."""
    for args in (["--help"], ["search", "--help"], ["search", "sync", "--help"], ["backup", "create", "--help"]):
        result = subprocess.run([sys.executable, "-X", "importtime", str(SCRIPT), *args], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Usage: orchestrator-data" in result.stdout
        loaded = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
        assert not {"typer.rich_utils", "markdown_it", "rich.markdown"} & loaded, args
        # a command's own parameters go through typer's coercion, which is built on pydantic (typer >= 0.20)
        ours = set(HEAVY) - ({"pydantic"} if len(args) > 1 else set())
        assert sorted({name.split(".")[0] for name in loaded} & ours) == [], args


def test_the_installed_script_prints_its_version():
    assert SCRIPT.exists(), f"console script not installed at {SCRIPT}"
    result = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"orchestrator-data {__version__}"
    assert result.stderr == ""


def test_the_names_help_shows_are_the_cores_own():
    from celery.utils.log import LOG_LEVELS

    from orchestrator_data import stack, workers
    from orchestrator_data.backups import workdirs
    from orchestrator_data.search import full_load, indices, sources

    assert choices.SEARCH_INDICES == indices.NAMES
    assert choices.SYNCED_INDICES == sources.SYNCED
    assert choices.PARTITIONED_INDICES == full_load.PARTITIONED
    assert choices.STACK_SERVICES == stack.SERVICES
    assert choices.WORKER_QUEUE == workers.DEFAULT_QUEUE
    assert choices.TEMP_GRACE_HOURS == workdirs.DEFAULT_GRACE.total_seconds() / 3600
    assert set(choices.CELERY_LOG_LEVELS) <= set(LOG_LEVELS)
