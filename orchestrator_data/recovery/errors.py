"""The recovery package's errors: a refusal (bad input, exit 2) or a failure (exit 1)."""

from __future__ import annotations

from orchestrator_data.errors import BadInput, OperationFailed


class RecoveryError(OperationFailed):
    """A recovery operation that failed (a tool, the server, the archive)."""

    subject = "recovery"


class RecoveryRefused(BadInput):
    """Refused before anything was written: a bad target, a window it is outside of, a busy directory or port."""

    subject = "recovery"


class ArchiveCorrupt(RecoveryError):
    """A stored WAL segment or base backup that does not read back as written."""
