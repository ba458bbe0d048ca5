"""What a restore recovers to: one of a time, an LSN, a transaction id, a restore point's name, or the
archive's end. Parsed and checked here before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from orchestrator_data.recovery.errors import RecoveryRefused
from orchestrator_data.recovery.layout import int_to_lsn, lsn_to_int

_LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
_NAME = re.compile(r"^[^\x00-\x1f'\"\\]{1,63}$")


@dataclass(frozen=True)
class Target:
    kind: str                      # time | lsn | xid | name | latest
    time: datetime | None = None
    lsn: int | None = None
    xid: int | None = None
    name: str | None = None

    def describe(self) -> str:
        if self.kind == "time":
            return f"time {self.time.isoformat()}"
        if self.kind == "lsn":
            return f"LSN {int_to_lsn(self.lsn)}"
        if self.kind == "xid":
            return f"transaction {self.xid}"
        if self.kind == "name":
            return f"restore point {self.name!r}"
        return "the archive's end"


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601; without an offset the time is UTC. A time in the future is refused."""
    try:
        value = datetime.fromisoformat(text.strip().replace(" ", "T", 1).replace("Z", "+00:00"))
    except ValueError:
        raise RecoveryRefused(f"--target-time {text!r} is not an ISO 8601 time (e.g. 2026-12-01T14:03:00Z)") from None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    if value > now:
        raise RecoveryRefused(f"--target-time {value.isoformat()} is in the future (now {now.isoformat(timespec='seconds')})")
    return value.astimezone(UTC)


def parse_target(*, time: str | None = None, lsn: str | None = None, xid: str | int | None = None,
                 name: str | None = None, latest: bool = False, now: datetime | None = None) -> Target:
    given = [flag for flag, value in (("--target-time", time), ("--target-lsn", lsn), ("--target-xid", xid),
                                      ("--target-name", name), ("--latest", latest or None)) if value is not None]
    if len(given) != 1:
        raise RecoveryRefused("give exactly one of --target-time, --target-lsn, --target-xid, --target-name, --latest"
                              + (f" (got {', '.join(given)})" if given else ""))
    if time is not None:
        return Target("time", time=parse_time(time, now))
    if lsn is not None:
        if not _LSN.match(lsn.strip()):
            raise RecoveryRefused(f"--target-lsn {lsn!r} is not an LSN (e.g. 0/3000060)")
        return Target("lsn", lsn=lsn_to_int(lsn.strip()))
    if xid is not None:
        text = str(xid).strip()
        if not text.isdigit() or not 3 <= int(text) < 2**32:
            raise RecoveryRefused(f"--target-xid {xid!r} is not a transaction id (a number from 3 to 4294967295)")
        return Target("xid", xid=int(text))
    if name is not None:
        if not _NAME.match(name):
            raise RecoveryRefused(f"--target-name {name!r} is not a restore point name (1-63 characters, no quotes)")
        return Target("name", name=name)
    return Target("latest")
