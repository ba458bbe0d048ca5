from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "orchestrator-data"


def run_cli(*args: str, env: dict | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it (from `cwd`, where it reads .env files)."""
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd,
    )


@pytest.fixture
def cli():
    assert SCRIPT.exists(), f"console script not installed at {SCRIPT}"
    return run_cli
