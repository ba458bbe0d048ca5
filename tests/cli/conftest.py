from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.cli import in_process

SCRIPT = Path(sys.executable).parent / "orchestrator-data"


def run_cli(*args: str, env: dict | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it (from `cwd`, where it reads .env files)."""
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd,
    )


def invoke_cli(*args: str, env: dict | None = None, timeout: float = 300,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The console script's function run in this process (tests/cli/in_process.py): what `run_cli`
    returns, in milliseconds instead of a Python start and every import (about 1.5 s)."""
    return in_process.invoke(in_process.console_script(), args, env=env, timeout=timeout, cwd=cwd,
                             argv0=str(SCRIPT))


@pytest.fixture
def cli():
    """`cli(*args, env=..., cwd=..., timeout=...)` -> returncode/stdout/stderr, in process: for every
    test but those of the process itself (signals, `run`, `ui`, workers), which use `cli_process`."""
    return invoke_cli


@pytest.fixture
def cli_process():
    """The same call through the installed console script, in a process of its own."""
    assert SCRIPT.exists(), f"console script not installed at {SCRIPT}"
    return run_cli


@pytest.fixture
def prefix(stack):
    """A SEARCH_INDEX_PREFIX of the test's own; its indices and templates are dropped afterwards."""
    from orchestrator_data import connections
    from orchestrator_data.search.indices import Layout, drop_indices
    from orchestrator_data.settings import load_settings

    name = f"c{uuid.uuid4().hex[:10]}"
    yield name
    client = connections.elasticsearch_client(load_settings())
    drop_indices(client, Layout(name))
    client.close()
