"""The `cli` fixture runs commands in the test process (tests/cli/in_process.py); these tests hold it to
what the process did: the same exit code, stdout and stderr for the same call, and nothing a command
changes outlives its call. The last ones are the smoke tests of the installed console script."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from orchestrator_data import redaction
from tests.cli import in_process, sample_app
from tests.cli.conftest import invoke_cli, run_cli
from tests.conftest import PROJECT_ROOT

SAMPLE = "import sys; from tests.cli.sample_app import main; sys.exit(main())"


def sample_in_process(*args: str, **options) -> subprocess.CompletedProcess:
    return in_process.invoke(sample_app.main, args, argv0="-c", **options)


def sample_as_process(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SAMPLE, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(PROJECT_ROOT), **(env or {})})


def _without_first_frame(stderr: str) -> str:
    """A traceback without its outermost frame: the script's `<module>` line in a process, the
    fixture's call of the entry point in process; the frames from the app's `main` on are the same."""
    return re.sub(r"Traceback \(most recent call last\):\n  File .*\n(?:    .*\n)*?(?=  File )",
                  "Traceback (most recent call last):\n", stderr, count=1)


@pytest.mark.parametrize("args", [
    ["boom"], ["exit-text"], ["exit-code", "3"], ["noisy"], ["table"], ["child-writes"],
], ids=lambda args: args[0])
def test_the_sample_app_gives_the_same_result_in_process_and_as_a_process(args):
    inside, process = sample_in_process(*args), sample_as_process(*args)
    assert (inside.returncode, inside.stdout) == (process.returncode, process.stdout)
    assert _without_first_frame(inside.stderr) == _without_first_frame(process.stderr)


def test_an_exception_that_escapes_is_a_traceback_on_stderr_and_exit_1():
    result = sample_in_process("boom")
    assert result.returncode == 1
    assert result.stdout == "before the error\n"
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert result.stderr.endswith("RuntimeError: boom: something escaped the command\n")


def test_warnings_and_log_records_reach_stderr_as_in_a_fresh_process():
    result = sample_in_process("noisy")
    assert "UserWarning: a warning the command raises" in result.stderr
    assert "a record logged at WARNING\n" in result.stderr
    assert "a record logged at INFO" not in result.stderr


def test_a_console_made_at_import_prints_200_columns_without_colour():
    result = sample_in_process("table")
    assert sample_app.WIDE in result.stdout  # one line: not wrapped at 80 columns
    assert "marked up\n" in result.stdout and "\x1b[" not in result.stdout


def test_writes_of_a_child_process_are_captured():
    result = sample_in_process("child-writes")
    assert result.stdout == "from a child on stdout\n" and result.stderr == "from a child on stderr\n"


def test_the_environment_and_directory_are_the_calls_only(tmp_path):
    before = os.getcwd()
    result = sample_in_process("show", "SAMPLE_VALUE", env={"SAMPLE_VALUE": "for this call"}, cwd=tmp_path)
    assert result.stdout == f"SAMPLE_VALUE=for this call\ncwd={tmp_path}\n"
    assert "SAMPLE_VALUE" not in os.environ and os.getcwd() == before


def test_secrets_registered_by_the_test_process_do_not_hide_a_leak():
    # a fresh process does not know the secrets this process registered: the command's own
    # redaction must catch them, or the test sees them
    redaction.register_secret("TestProcessOnly-4k9Z")
    try:
        result = sample_in_process("show", "SAMPLE_VALUE", env={"SAMPLE_VALUE": "TestProcessOnly-4k9Z"})
        assert "SAMPLE_VALUE=TestProcessOnly-4k9Z\n" in result.stdout
        assert "TestProcessOnly-4k9Z" in redaction._known_secrets
    finally:
        redaction._known_secrets.discard("TestProcessOnly-4k9Z")


def test_nothing_a_command_changes_outlives_its_call():
    handler = signal.getsignal(signal.SIGTERM)
    environ, cwd, path = dict(os.environ), os.getcwd(), sys.path[:]
    root_handlers = logging.getLogger().handlers[:]
    result = sample_in_process("leave-state", "LeftBehind-Secret-8q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the thread finished\n"  # non-daemon threads are waited for, as at exit
    assert signal.getsignal(signal.SIGTERM) is handler
    assert dict(os.environ) == environ and os.getcwd() == cwd and sys.path == path
    assert logging.getLogger().handlers == root_handlers
    assert logging.getLogger("sample.fresh").handlers == []
    assert "LeftBehind-Secret-8q" not in redaction._known_secrets


def test_a_call_past_its_timeout_raises_as_subprocess_run_does():
    pending_before, _ = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        sample_in_process("sleep", "30", timeout=0.5)
    assert time.monotonic() - started < 10
    pending_after, _ = signal.getitimer(signal.ITIMER_REAL)
    if pending_before:  # pytest-timeout's alarm is armed again with what was left of it
        assert 0 < pending_after <= pending_before


# -- the installed console script: a few calls through it, each also compared with the fixture ----
def _same(inside: subprocess.CompletedProcess, process: subprocess.CompletedProcess) -> None:
    assert (inside.returncode, inside.stdout, inside.stderr) == (process.returncode, process.stdout, process.stderr)


def test_console_script_help_at_200_columns():
    process = run_cli("--help")
    assert process.returncode == 0 and "Usage: orchestrator-data" in process.stdout
    assert max(map(len, process.stdout.splitlines())) > 80  # the help uses the width it is given
    _same(invoke_cli("--help"), process)


def test_console_script_usage_error():
    process = run_cli("test", "--skip-everything")
    assert process.returncode == 2 and "No such option" in process.stderr
    _same(invoke_cli("test", "--skip-everything"), process)


def test_console_script_bad_configuration_is_one_line_without_the_secret():
    env = {"DATABASE_URL": "postgresql://u:Sm0keSecret@db:99999/app"}
    process = run_cli("status", env=env)
    assert process.returncode == 2 and process.stdout == ""
    assert process.stderr.count("\n") == 1 and "DATABASE_URL has a port" in process.stderr
    assert "Sm0keSecret" not in process.stderr
    _same(invoke_cli("status", env=env), process)


def test_console_script_reads_the_env_file_of_its_directory(tmp_path):
    (tmp_path / ".env.local").write_text("REDIS_URL=redis://cache:6379/x\n")
    process = run_cli("status", cwd=tmp_path, env={"ORCHESTRATOR_DATA_HOME": str(tmp_path / "state")})
    assert process.returncode == 2 and "REDIS_URL has a database number" in process.stderr
    _same(invoke_cli("status", cwd=tmp_path, env={"ORCHESTRATOR_DATA_HOME": str(tmp_path / "state")}), process)


@pytest.mark.integration
def test_console_script_stack_status_table(stack):
    process = run_cli("stack", "status")
    assert process.returncode == 0 and "postgres" in process.stdout and "elasticsearch" in process.stdout
    _same(invoke_cli("stack", "status"), process)
