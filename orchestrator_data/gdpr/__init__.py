"""GDPR: export everything held about one person, and erase it (PostgreSQL, Redis, Elasticsearch).

Pure core (no Dagster): the CLI (`orchestrator-data gdpr ...`) and the op jobs in jobs/gdpr.py call
`export.export_user` and `erase.erase_user`. docs/gdpr.md describes the export document and the
erasure, and the ledger a restore re-applies.
"""

from __future__ import annotations

import uuid

from orchestrator_data.errors import BadInput


class GdprError(BadInput):
    """A request that cannot be served; the message names what is wrong, never personal data."""


class InvalidUserId(GdprError):
    pass


class UnknownUser(GdprError):
    pass


class AlreadyErased(GdprError):
    pass


def user_id(value: str | uuid.UUID) -> uuid.UUID:
    """The id as a UUID, or InvalidUserId (the value is not echoed: it may be an e-mail pasted by mistake)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value).strip())
    except ValueError:
        raise InvalidUserId("--user must be a user id (a UUID)") from None
