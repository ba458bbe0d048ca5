"""Errors of the object store. Messages name the endpoint, bucket and key, never a credential."""

from __future__ import annotations

from orchestrator_data.errors import BadInput, OperationFailed


class OffsiteError(OperationFailed):
    """An upload, download or listing failed (the store is unreachable, a checksum did not match)."""

    subject = "object store"


class OffsiteRefused(OffsiteError, BadInput):
    """Bad input: the store is not configured, the bucket does not exist, the credentials are refused,
    an id that the bucket does not hold."""


class OffsiteCorrupt(OffsiteError):
    """An object does not hold the bytes it was uploaded with (size or checksum)."""


class OffsiteMissing(OffsiteRefused):
    """The bucket holds no such object (or no such backup)."""
