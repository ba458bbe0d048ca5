"""Which history is this? A primary's WAL position (timeline, LSN), and whether a position recorded earlier
— by the search sync, when it last wrote an index — is part of the current primary's history.

Every promotion starts a new timeline. Its history file (`pg_wal/<timeline>.history`) lists, for each
ancestor timeline, the LSN at which the new branch left it (the switch point). A position (T, L) recorded
before a failover is in the new primary's history when T is the current timeline, or an ancestor left at a
switch point at or after L. When L is after the switch point, commits up to L were on the old primary and
never reached the standby that took over: they are lost, and anything derived from them (search documents,
Redis state) describes a future that did not happen (recovery/aftermath.py brings it in line).

Reading the history file takes superuser or pg_read_server_files; without it the verdict is "unknown",
which the callers treat as lost (a rebuild too many, never a lost future kept).
"""

from __future__ import annotations

from dataclasses import dataclass

POSITION = ("SELECT CASE WHEN pg_is_in_recovery() THEN NULL "
            "ELSE ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int END, "
            "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END")


def lsn_to_int(text: str) -> int:
    """`16/B374D848` as a number (this package imports nothing above it: recovery and search import it)."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass(frozen=True)
class Position:
    timeline: int
    lsn: str

    def as_meta(self) -> dict:
        return {"timeline": self.timeline, "lsn": self.lsn}

    @classmethod
    def from_meta(cls, found) -> Position | None:
        if not isinstance(found, dict) or "timeline" not in found or "lsn" not in found:
            return None
        return cls(int(found["timeline"]), str(found["lsn"]))


@dataclass(frozen=True)
class SwitchPoint:
    timeline: int     # the ancestor timeline
    lsn: str          # where the next timeline branched off it


@dataclass(frozen=True)
class Verdict:
    recorded: Position
    current: Position
    switch: SwitchPoint | None    # where the recorded timeline was left (None: same timeline, or unknown)
    lost: bool                    # the recorded position is not in the current history (or cannot be told)
    why: str

    @property
    def timeline_changed(self) -> bool:
        return self.current.timeline != self.recorded.timeline


def _scalar_row(conn, query: str) -> tuple:
    import sqlalchemy as sa

    if isinstance(conn, sa.Connection):
        return tuple(conn.execute(sa.text(query)).one())
    return tuple(conn.execute(query).fetchone())


def current_position(conn) -> Position | None:
    """The primary's timeline and WAL insert position; None on a standby."""
    timeline, lsn = _scalar_row(conn, POSITION)
    return None if timeline is None else Position(int(timeline), lsn)


def position_of(engine) -> Position | None:
    with engine.connect() as conn:
        found = current_position(conn)
        conn.rollback()
    return found


def parse_history(text: str) -> list[SwitchPoint]:
    """The lines `<parent timeline>\\t<switch LSN>\\t<reason>` of a timeline history file."""
    found = []
    for line in text.splitlines():
        fields = line.strip().split()
        if len(fields) >= 2 and fields[0].isdigit() and "/" in fields[1]:
            found.append(SwitchPoint(int(fields[0]), fields[1]))
    return found


def read_history(conn, timeline: int) -> list[SwitchPoint] | None:
    """The current timeline's ancestors and switch points; [] for timeline 1; None when unreadable."""
    import sqlalchemy as sa

    if timeline <= 1:
        return []
    query = f"SELECT pg_read_file('pg_wal/{timeline:08X}.history')"
    try:
        if isinstance(conn, sa.Connection):
            with conn.begin_nested():  # a refusal must not abort the caller's transaction
                text = _scalar_row(conn, query)[0]
        else:
            text = _scalar_row(conn, query)[0]
    except Exception:  # noqa: BLE001 - no privilege, or the file is gone: the history is unknown
        return None
    return parse_history(text)


def judge(conn, recorded: Position) -> Verdict | None:
    """Is `recorded` in the history of the server behind `conn`? None when that server is a standby."""
    current = current_position(conn)
    if current is None:
        return None
    history = [] if current.timeline == recorded.timeline else read_history(conn, current.timeline)
    return verdict(recorded, current, history)


def verdict(recorded: Position, current: Position, history: list[SwitchPoint] | None) -> Verdict:
    """`recorded` against the current position and the current timeline's history (None: unreadable)."""
    if current.timeline == recorded.timeline:
        return Verdict(recorded, current, None, False, f"same timeline {current.timeline}")
    switch = next((point for point in history or [] if point.timeline == recorded.timeline), None)
    if switch is None:
        why = (f"timeline {recorded.timeline} (recorded at {recorded.lsn}) is not an ancestor of this server's "
               f"timeline {current.timeline}" if history is not None else
               f"timeline {recorded.timeline} -> {current.timeline}, and this server's timeline history is unreadable")
        return Verdict(recorded, current, None, True, why + ": treated as lost")
    lost = lsn_to_int(recorded.lsn) > lsn_to_int(switch.lsn)
    why = (f"timeline {recorded.timeline} -> {current.timeline}, branched off at {switch.lsn}; recorded at "
           f"{recorded.lsn}: " + ("commits after the branch point were lost (a failover to a lagging standby)"
                                  if lost else "everything recorded is in this history"))
    return Verdict(recorded, current, switch, lost, why)
