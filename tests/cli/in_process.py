"""The console script's function, called inside the test process as if it were its own process.

A process starts with a clean slate and leaves nothing behind; a call in the test process must do the
same, or one test's command changes what the next one sees (and a defect one process would show goes
unseen). So each call:

- runs what the console script runs (`sys.exit(main())`, found through the installed entry point),
  with sys.argv, the environment (COLUMNS=200 plus the call's overrides) and the working directory of
  the call, stdout and stderr captured apart (typer's CliRunner), and file descriptors 1 and 2 captured
  too (a child process such as pg_dump writes there);
- exits as the interpreter would: `sys.exit`'s code, and an exception that escapes is printed by
  `sys.excepthook` (typer's, as installed by the app) on stderr with return code 1;
- builds the rich Consoles that modules create at import afresh (their width and colours are read
  from the environment and the stream at creation), gives the command an unconfigured root logger
  (records of WARNING and up reach stderr through logging's last resort, as in a fresh process) and
  the interpreter's default warning filters (a warning is printed on stderr, not kept by pytest), and
  an empty register of secrets to redact (the test process's register would hide a leak);
- afterwards restores what a command may change for the rest of its process: the environment, the
  working directory, sys.argv/path/excepthook, signal handlers, loggers and the redaction register;
  and, as the interpreter does at exit, waits for the non-daemon threads the command started.

A call that takes longer than `timeout` raises subprocess.TimeoutExpired, as subprocess.run does.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from importlib.metadata import entry_points
from pathlib import Path

from typer.testing import CliRunner, _NamedTextIOWrapper

SCRIPT_NAME = "orchestrator-data"
COLUMNS = "200"
# top-level packages of the project whose modules may hold state created at import
PROJECT_PACKAGES = frozenset({"orchestrator_data", "assets", "jobs", "resources", "schedules", "definitions"})


def console_script() -> Callable[[], object]:
    """The function the installed `orchestrator-data` script calls (pyproject's [project.scripts])."""
    [entry] = entry_points(group="console_scripts", name=SCRIPT_NAME)
    return entry.load()


class _TimedOut(BaseException):
    """Raised in the command when its time is up; a BaseException so no `except Exception` keeps it."""


def invoke(entry: Callable[[], object], args: Sequence[str], *, env: Mapping[str, str | None] | None = None,
           cwd: Path | str | None = None, timeout: float | None = 300,
           argv0: str = SCRIPT_NAME) -> subprocess.CompletedProcess:
    argv = [argv0, *map(str, args)]
    runner = CliRunner()
    threads_before = set(threading.enumerate())
    first_imported: list[str] = []
    with ExitStack() as restore:
        restore.enter_context(_process_state_restored())
        fds = restore.enter_context(_file_descriptors_captured())
        with runner.isolation(env={"COLUMNS": COLUMNS, **(env or {})}) as (out, err, _):
            _help_width_from_terminal()
            sys.argv = argv
            if cwd is not None:
                os.chdir(cwd)
            try:
                with _deadline(timeout), _fresh_consoles(first_imported), _fresh_logging(), \
                        _default_warnings(), _empty_redaction_register():
                    returncode = _run_as_script(entry)
                    _wait_for_threads(threads_before)
            except _TimedOut:
                sys.stdout.flush()
                sys.stderr.flush()
                raise subprocess.TimeoutExpired(argv, timeout, output=out.getvalue(),
                                                stderr=err.getvalue()) from None
            sys.stdout.flush()
            sys.stderr.flush()
            stdout, stderr = out.getvalue(), err.getvalue()
    for name in first_imported:
        importlib.reload(sys.modules[name])
    # fd-level writes (children, C libraries) come after the Python-level ones: the order between the
    # two is not kept, what was written is
    stdout += fds[1]
    stderr += fds[2]
    return subprocess.CompletedProcess(argv, returncode, _text(stdout), _text(stderr))


def _run_as_script(entry: Callable[[], object]) -> int:
    """`sys.exit(main())` and the interpreter's handling of how it ends."""
    try:
        code = entry()
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        return -signal.SIGINT  # the interpreter ends itself with SIGINT
    except Exception:  # noqa: BLE001 - what escapes a process is printed and exits 1
        sys.excepthook(*sys.exc_info())
        return 1
    # any other BaseException (the deadline, pytest's own outcomes) ends the test, not the "process"
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


def _help_width_from_terminal() -> None:
    # CliRunner pins help to 80 columns; the process takes its width from COLUMNS like everything else
    from typer._click import formatting

    formatting.FORCED_WIDTH = None


@contextmanager
def _process_state_restored() -> Iterator[None]:
    environ = dict(os.environ)
    cwd = os.getcwd()
    argv, path, excepthook = sys.argv[:], sys.path[:], sys.excepthook
    handlers = _signal_handlers()
    loggers = _logger_states()
    try:
        yield
    finally:
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        for name, value in environ.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        os.chdir(cwd)
        sys.argv[:], sys.path[:], sys.excepthook = argv, path, excepthook
        for signum, handler in handlers.items():
            if signal.getsignal(signum) is not handler:
                signal.signal(signum, handler)
        _restore_loggers(loggers)


def _signal_handlers() -> dict[int, object]:
    handlers = {}
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (OSError, ValueError):
            continue
        if handler is not None:  # None: set outside Python, cannot be put back from here
            handlers[signum] = handler
    return handlers


def _logger_states() -> dict[str, tuple]:
    loggers = {"": logging.getLogger()}
    loggers.update((name, logger) for name, logger in logging.Logger.manager.loggerDict.items()
                   if isinstance(logger, logging.Logger))
    return {name: (logger, logger.level, list(logger.handlers), logger.propagate, logger.disabled)
            for name, logger in loggers.items()}


def _restore_loggers(states: dict[str, tuple]) -> None:
    for logger, level, handlers, propagate, disabled in states.values():
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate, logger.disabled = propagate, disabled
    # loggers first made by the command: handlers on the call's streams would write to closed files
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name not in states and isinstance(logger, logging.Logger):
            logger.handlers[:] = [h for h in logger.handlers if not _on_a_call_stream(h)]


def _on_a_call_stream(handler: logging.Handler) -> bool:
    return isinstance(getattr(handler, "stream", None), _NamedTextIOWrapper)


@contextmanager
def _file_descriptors_captured() -> Iterator[dict[int, bytes]]:
    captured: dict[int, bytes] = {}
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    files = {fd: tempfile.TemporaryFile() for fd in (1, 2)}
    try:
        for fd, file in files.items():
            os.dup2(file.fileno(), fd)
        yield captured
    finally:
        for fd, file in files.items():
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
            file.seek(0)
            captured[fd] = file.read()
            file.close()


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """SIGALRM after `seconds`, sharing the one real-time timer with pytest-timeout: if its alarm is
    due first, it is left alone; otherwise it is re-armed with what is left of it afterwards."""
    pending, _ = signal.getitimer(signal.ITIMER_REAL)
    if seconds is None or (pending and pending <= seconds):
        yield
        return

    def expire(signum, frame):
        raise _TimedOut

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if pending:
            signal.setitimer(signal.ITIMER_REAL, max(pending - (time.monotonic() - started), 0.001))


def _console_modules() -> dict[str, object]:
    from rich.console import Console

    return {name: module for name, module in list(sys.modules.items())
            if module is not None and name.partition(".")[0] in PROJECT_PACKAGES
            and any(isinstance(value, Console) for value in list(vars(module).values()))}


@contextmanager
def _fresh_consoles(first_imported: list[str]) -> Iterator[None]:
    """Modules that create a rich Console at import are imported again for the call (in its
    environment, on its streams) and put back as they were afterwards. Those the command imported
    first are named in `first_imported`, to be imported again once the call's streams are gone."""
    import rich

    before = _console_modules()
    saved = {name: dict(vars(module)) for name, module in before.items()}
    global_console = rich._console
    rich._console = None
    try:
        for module in before.values():
            importlib.reload(module)
        yield
    finally:
        rich._console = global_console
        for name, module in before.items():
            vars(module).update(saved[name])
        first_imported.extend(set(_console_modules()) - set(before))


@contextmanager
def _fresh_logging() -> Iterator[None]:
    """The root logger of a fresh process: no handler (logging's last resort prints WARNING and up on
    the call's stderr), level WARNING. The test runner's own handlers are put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _print_warning(message: warnings.WarningMessage) -> None:
    sys.stderr.write(warnings.formatwarning(message.message, message.category, message.filename,
                                            message.lineno, message.line))


@contextmanager
def _default_warnings() -> Iterator[None]:
    """The interpreter's default filters (no -W option), warnings printed on stderr (pytest records
    them instead while a test runs)."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__", append=True)
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category, append=True)
        warnings.showwarning = warnings._showwarning_orig
        warnings._showwarnmsg_impl = _print_warning
        yield


@contextmanager
def _empty_redaction_register() -> Iterator[None]:
    from orchestrator_data import redaction

    register = redaction._known_secrets
    saved = set(register)
    register.clear()
    try:
        yield
    finally:
        register.clear()
        register.update(saved)


def _wait_for_threads(before: set[threading.Thread]) -> None:
    """The interpreter waits for every non-daemon thread before the process ends."""
    for thread in threading.enumerate():
        if thread not in before and not thread.daemon and thread is not threading.current_thread():
            thread.join()
