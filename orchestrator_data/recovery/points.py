"""Named restore points: pg_create_restore_point on the server, recorded in restore_points.jsonl
(name, lsn, time) so that `recovery restore --target-name` and people can find them."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from orchestrator_data.recovery.errors import RecoveryRefused
from orchestrator_data.recovery.layout import Layout
from orchestrator_data.recovery.server import Primary
from orchestrator_data.recovery.targets import _NAME


@dataclass(frozen=True)
class RestorePoint:
    name: str
    lsn: str
    time: str
    timeline: int


def list_points(layout: Layout) -> list[RestorePoint]:
    try:
        lines = layout.restore_points.read_text().splitlines()
    except FileNotFoundError:
        return []
    points = []
    for line in lines:
        try:
            points.append(RestorePoint(**json.loads(line)))
        except (ValueError, TypeError):
            continue  # a line cut by a crash is not a restore point
    return points


def create_point(primary: Primary, layout: Layout, name: str, *, allow_reuse: bool = False) -> RestorePoint:
    """Make a restore point. A name already used is refused unless `allow_reuse` (migrations: a revision
    applied again after a rollback makes a point of the same name; a restore picks the newest)."""
    if not _NAME.match(name):
        raise RecoveryRefused(f"restore point name {name!r}: 1-63 characters, no quotes or control characters")
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.root / ".restore_points.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not allow_reuse and any(p.name == name for p in list_points(layout)):
            raise RecoveryRefused(f"restore point {name!r} already exists: choose another name")
        with primary.connect() as conn:
            lsn, timeline = conn.execute(
                "SELECT pg_create_restore_point(%s)::text, (SELECT timeline_id FROM pg_control_checkpoint())",
                (name,)).fetchone()
        point = RestorePoint(name, lsn, datetime.now(UTC).isoformat(), int(timeline))
        with open(layout.restore_points, "a") as fh:
            fh.write(json.dumps(asdict(point)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return point
