"""The Java launcher's own smoke test (elasticsearch-node/smoke-test.sh) on a free port: templates,
write aliases, bulk, queries, aggregations, rollover (dry run and real), the by-query endpoints,
fs snapshots and restore, SIGTERM and a restart on the same data."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from orchestrator_data.stack.common import free_port
from orchestrator_data.stack.elasticsearch import ensure_built, node_dir
from tests.conftest import ES_TEST_JAVA_OPTS

pytestmark = pytest.mark.integration


def test_launcher_smoke_test_passes():
    ensure_built()
    result = subprocess.run(
        ["bash", str(node_dir() / "smoke-test.sh"), str(free_port())],
        capture_output=True, text=True, timeout=600,
        # the JIT options of the suite's own nodes: its three JVMs cost about half the CPU
        env={**os.environ, "JAVA_OPTS": ES_TEST_JAVA_OPTS},
    )
    summary = re.search(r"(\d+) passed, (\d+) failed", result.stdout)
    assert summary, result.stdout[-3000:] + result.stderr[-2000:]
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert int(summary.group(2)) == 0 and not failures, "\n".join(failures)
    assert int(summary.group(1)) >= 30
    assert result.returncode == 0
