"""What every asset's metadata shares: sizes a person can read beside the byte counts, and a code
version that changes when the code behind the asset does."""

from __future__ import annotations

import hashlib
import inspect
from types import ModuleType

import dagster as dg

from orchestrator_data import __version__
from orchestrator_data.units import human_bytes


def _bytes_of(value) -> int | float | None:
    if isinstance(value, dg.IntMetadataValue | dg.FloatMetadataValue):
        value = value.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def with_human_sizes(metadata: dict) -> dict:
    """For each `<name>_bytes` figure, `<name>` (or `<name>_human` when taken) as e.g. '12.3 MiB'.
    The byte count stays numeric, so the UI still plots it."""
    shown = dict(metadata)
    for key, value in metadata.items():
        number = _bytes_of(value)
        if not key.endswith("_bytes") or number is None:
            continue
        name = key[: -len("_bytes")]
        shown[name if name not in metadata else f"{name}_human"] = human_bytes(number)
    return shown


def code_version(*modules: ModuleType) -> str:
    """The package version and a hash of the source of the modules that do an asset's work: the UI
    marks an asset whose code changed since it was last materialized."""
    digest = hashlib.sha256(__version__.encode())
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    return f"{__version__}-{digest.hexdigest()[:12]}"
