"""The one error contract: every error the core raises on purpose is bad input (exit 2) or a failed
operation (exit 1), and a refinement of a failure into bad input wins. Needs no server."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import orchestrator_data
from orchestrator_data.errors import BadInput, DataLayerError, OperationFailed, exit_code

# exceptions that never leave their module: a signal to retry inside the sync
INTERNAL = {"orchestrator_data.search.bulk._Retryable"}


def _core_exceptions() -> list[type[Exception]]:
    found = {}
    for module in pkgutil.walk_packages(orchestrator_data.__path__, "orchestrator_data."):
        if ".migrations" in module.name:  # Alembic's revision scripts run only under Alembic
            continue
        loaded = importlib.import_module(module.name)
        for value in vars(loaded).values():
            if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module.name:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [cls for name, cls in sorted(found.items()) if name not in INTERNAL]


def test_every_core_error_is_bad_input_or_a_failed_operation():
    errors = _core_exceptions()
    assert len(errors) > 30
    outside = [f"{e.__module__}.{e.__qualname__}" for e in errors
               if e not in (DataLayerError, BadInput, OperationFailed)
               and not issubclass(e, (BadInput, OperationFailed))]
    assert outside == []


@pytest.mark.parametrize(("error", "code"), [
    ("orchestrator_data.settings:SettingsError", 2),
    ("orchestrator_data.connections:ServiceNotConfigured", 2),
    ("orchestrator_data.retention.purge:RetentionRefused", 2),
    ("orchestrator_data.postgres.migrator:MigrationError", 1),
    ("orchestrator_data.postgres.migrator:MigrationLockTimeout", 1),
    ("orchestrator_data.backups.catalog:BackupError", 1),
    ("orchestrator_data.backups.catalog:BackupCorrupt", 1),
    ("orchestrator_data.backups.catalog:BackupNotFound", 2),
    ("orchestrator_data.search.errors:SearchError", 1),
    ("orchestrator_data.search.errors:UnknownIndex", 2),
    ("orchestrator_data.search.snapshots:SnapshotNotFound", 2),
    ("orchestrator_data.redis.errors:KeyspaceError", 1),
    ("orchestrator_data.gdpr:GdprError", 2),
])
def test_exit_codes(error, code):
    module, name = error.split(":")
    cls = getattr(importlib.import_module(module), name)
    assert exit_code(cls.__new__(cls)) == code


def test_a_refinement_into_bad_input_wins_over_its_failing_root():
    from orchestrator_data.postgres.migrator import MigrationError, UnknownRevision

    refused = UnknownRevision("9999", ["0001"])
    assert isinstance(refused, MigrationError) and isinstance(refused, OperationFailed)
    assert exit_code(refused) == 2


def test_one_line_joins_a_multi_line_message_and_names_its_subject():
    from orchestrator_data.settings import SettingsError

    assert OperationFailed("pg_dump failed:\n  disk full\n").one_line() == "pg_dump failed: disk full"
    assert SettingsError("DATABASE_URL", "has a port out of range").one_line() == \
        "configuration: DATABASE_URL has a port out of range"
    assert exit_code(ValueError("not ours")) == 1
