"""How old the newest good copy of something is, against a promise: the PostgreSQL backups' (newest
verified, newest restore-checked) and the search snapshots' (newest successful, newest restore-checked).
The freshness asset checks and the stale-copy sensors all read a Freshness."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Dated(Protocol):
    """A backup, a snapshot, a restore check: anything with an id and the time it was taken."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


@dataclass(frozen=True)
class Freshness:
    promise: str                # "verified" | "restore-checked" | "successful" ...
    entry: Dated | None         # the newest copy that keeps the promise's condition, if any
    age_hours: float | None
    max_age_hours: float
    kind: str = "backup"        # what the copies are, for describe(): "backup", "search snapshot"

    @property
    def ok(self) -> bool:
        return self.age_hours is not None and self.age_hours <= self.max_age_hours

    @property
    def cursor(self) -> str:
        """What a sensor remembers having alerted about: this copy's id, or 'none'."""
        return self.entry.id if self.entry else "none"

    def describe(self) -> str:
        if self.entry is None:
            return f"no {self.promise} {self.kind}"
        return (f"newest {self.promise} {self.kind} {self.entry.id} is {self.age_hours:.1f} h old "
                f"(limit {self.max_age_hours:g} h)")


def age_hours(entry: Dated | None, now: datetime | None = None) -> float | None:
    if entry is None:
        return None
    return ((now or datetime.now(UTC)) - entry.created_at).total_seconds() / 3600


def freshness(promise: str, entry: Dated | None, max_age_hours: float, now: datetime | None = None, *,
              kind: str = "backup") -> Freshness:
    return Freshness(promise, entry, age_hours(entry, now), max_age_hours, kind)
