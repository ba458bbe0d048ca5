"""The test session's own stack: real PostgreSQL, Redis and Elasticsearch on free ports under a
temporary state directory, so a developer's running stack is never touched.

A test that needs a service depends on `stack`; if the stack cannot start, those tests error —
they never skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from orchestrator_data.connections import resolve_url
from orchestrator_data.postgres import client, migrator
from orchestrator_data.redis.client import create_client
from orchestrator_data.settings import load_settings
from orchestrator_data.stack import Stack
from orchestrator_data.stack.common import free_port
from tests.databases import fresh_database, migrated_copy

SERVICE_VARIABLES = (
    "DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL", "DAGSTER_PG_URL", "ELASTICSEARCH_API_KEY",
    "ELASTICSEARCH_USERNAME", "ELASTICSEARCH_PASSWORD", "ELASTICSEARCH_CA_CERT", "ENVIRONMENT",
    "ORCHESTRATOR_ENV", "BACKUP_DIR", "DAGSTER_HOME",
    # a developer's bucket must never receive the tests' backups
    "OFFSITE_BUCKET", "OFFSITE_ENDPOINT_URL", "OFFSITE_PREFIX", "OFFSITE_REGION", "OFFSITE_ACCESS_KEY_ID",
    "OFFSITE_SECRET_ACCESS_KEY",
)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# the test nodes live minutes: the JIT's optimizing tier would be most of their CPU (settings.py)
ES_TEST_JAVA_OPTS = "-XX:TieredStopAtLevel=1"

# A rich Console made at import fixes its width from COLUMNS when the variable is set then. The
# terminal's width (or pytest-xdist's worker, which sets COLUMNS=80) must not reach the modules the
# tests import: each command call sets its own (tests/cli/in_process.py).
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


# The modules whose tests each take tens of seconds, collected first: pytest-xdist's workers then
# spread the many short tests around them, rather than all waiting at the end for the one worker
# still in a long test (`make test`: -n 3 --dist worksteal). The others keep their order.
LONG_FIRST = (
    "tests/jobs/test_celery.py", "tests/cli/test_ui.py", "tests/cli/test_run.py",
    "tests/orchestrator_data/recovery/test_chain.py", "tests/elasticsearch_node/test_smoke.py",
    "tests/orchestrator_data/test_stack.py", "tests/orchestrator_data/search/test_node_restart.py",
    "tests/cli/test_offsite.py",
    "tests/orchestrator_data/replication/test_failover.py", "tests/jobs/test_dr_drill.py",
    "tests/orchestrator_data/replication/test_follow.py",
)


def pytest_collection_modifyitems(items):
    rank = {path: position for position, path in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable


def stack_environment(root: Path) -> dict[str, str]:
    return {
        "ORCHESTRATOR_DATA_HOME": str(root),
        "STACK_POSTGRES_PORT": str(free_port()),
        "STACK_REDIS_PORT": str(free_port()),
        "STACK_ELASTICSEARCH_PORT": str(free_port()),
        "STACK_ELASTICSEARCH_JAVA_OPTS": ES_TEST_JAVA_OPTS,
        "ENVIRONMENT": "testing",
    }


@pytest.fixture(scope="session")
def session_dir():
    """Outside pytest's own temp root on purpose: every new pytest session resets that root to mode
    0700, which would cut the stack's PostgreSQL (run as its own OS user) off from its data."""
    path = Path(tempfile.mkdtemp(prefix="orchestrator-data-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def default_interrupt_handling():
    """A run started in the background (`make test &`, nohup, CI) begins with SIGINT ignored; Dagster
    maps SIGTERM to SIGINT's handler whenever it executes a run here (dagster/_utils/interrupts.py),
    so SIGTERM ends up ignored too, and every server the tests start after that inherits it: the
    Elasticsearch node then ignores SIGTERM (each stop waits 60 s for SIGKILL; the launcher's smoke
    test waits forever). The test process handles SIGINT as a foreground Python process does."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(session_dir):
    """No service URL, .env file or Dagster home of the developer leaks into the tests: the
    variables are cleared and the session runs from an empty directory."""
    saved = dict(os.environ)
    cwd = os.getcwd()
    for name in SERVICE_VARIABLES:
        os.environ.pop(name, None)
    # CLI commands record their work in Dagster (a Dagster import and an instance per command);
    # tests/cli/test_recording.py turns it on for what it tests, the rest of the suite is spared the cost
    os.environ["ORCHESTRATOR_DATA_RECORD"] = "0"
    work = session_dir / "cwd"
    work.mkdir()
    os.chdir(work)
    yield work
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def stack(session_dir, isolated_environment):
    """The running test stack; its URLs are what every resource and command resolves to."""
    root = session_dir / "stack"
    os.environ.update(stack_environment(root))
    stack = Stack(load_settings())
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def endpoints(stack):
    return stack.endpoints()


@pytest.fixture
def clean_env(monkeypatch):
    """A function-scoped view of the environment to change freely."""
    return monkeypatch


@pytest.fixture
def es(stack):
    """A client on the session stack's Elasticsearch node."""
    from orchestrator_data import connections

    client = connections.elasticsearch_client(load_settings())
    yield client
    client.close()


@pytest.fixture
def redis_client(stack):
    """A client on the session stack's Redis."""
    client = create_client(resolve_url("redis", load_settings()))
    yield client
    client.close()
    client.connection_pool.disconnect()


@pytest.fixture
def database(stack):
    """A new, empty database on the session's PostgreSQL (the superuser's URL), dropped after the test."""
    with fresh_database(stack) as url:
        yield url


@pytest.fixture
def migrated_url(request, stack):
    """A new database migrated to head, as production gets it (a copy of the session's migrated
    template), dropped after the test. A test that also holds `database` gets that one migrated."""
    if "database" in request.fixturenames:
        database = request.getfixturevalue("database")
        migrator.upgrade(database)
        yield database
        return
    with migrated_copy(stack) as url:
        yield url


@pytest.fixture
def engine(migrated_url):
    """A superuser engine on a database migrated to head."""
    engine = client.create_engine(migrated_url, pool=client.PoolOptions(size=2, max_overflow=2))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def recovery_chain():
    """A cluster of its own with a running WAL archiver, a full and an incremental base backup and marked
    rows (tests/recovery_chain.py), shared by the recovery tests of the core and the CLI: built once."""
    from tests.recovery_chain import archived_chain

    with archived_chain() as built:
        yield built


@pytest.fixture(scope="session")
def s3_server(session_dir):
    """A real S3-compatible server (MinIO, `make minio` builds it) on a free port for the session; the
    tests that need it fail, never skip, when it is missing (tests/offsite_store.py)."""
    from tests.offsite_store import started_server

    with started_server(session_dir / "s3") as server:
        yield server


@pytest.fixture
def offsite_env(s3_server):
    """The OFFSITE_* variables of a new, empty bucket of the test's own on the session's S3 server."""
    from tests.offsite_store import new_bucket_env

    return new_bucket_env(s3_server)


@pytest.fixture(scope="session")
def standby_pair():
    """A scratch primary and its streaming standby (tests/replication_pair.py), shared by the tests that
    only observe it; each leaves it streaming and caught up. Tests that promote build a pair of their own."""
    from tests.replication_pair import replication_pair

    with replication_pair() as built:
        yield built
