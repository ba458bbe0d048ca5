"""What replication looks like from one server, in one round trip: who it is (primary or standby, its
timeline, its WAL position), each standby streaming from it with its lag, and each replication slot
with the WAL it holds back.

Read from pg_stat_replication, pg_replication_slots and pg_stat_wal_receiver (any role may read them;
without pg_read_all_stats the positions of other roles' senders show as unknown, never as zero). A
server with no standby and no slot answers in one cheap query. A walsender that never replays
(pg_receivewal: the WAL archiver, a base backup streaming its WAL) is listed as a `wal receiver`, not a
standby: it has no replay position, so "replay lag" means nothing for it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

PRIMARY = "primary"
STANDBY = "standby"
STANDBY_KIND = "standby"
RECEIVER_KIND = "wal receiver"

# One statement, so that a server without standbys costs one round trip. The position everything is
# measured from is the primary's current WAL position, or on a standby the WAL it has replayed.
QUERY = """
WITH here AS (
  SELECT pg_is_in_recovery() AS in_recovery,
         CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS position
)
SELECT here.in_recovery,
       here.position::text AS position,
       CASE WHEN here.in_recovery THEN NULL
            ELSE ('x' || substr(pg_walfile_name(here.position), 1, 8))::bit(32)::int END AS wal_timeline,
       CASE WHEN here.in_recovery THEN pg_last_wal_receive_lsn()::text END AS receive_lsn,
       CASE WHEN here.in_recovery THEN pg_is_wal_replay_paused() END AS replay_paused,
       CASE WHEN here.in_recovery THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END
         AS last_replayed_commit_age_s,
       host(inet_server_addr()) AS server_host, inet_server_port() AS server_port,
       (SELECT coalesce(json_agg(json_build_object(
           'application_name', r.application_name, 'client_addr', host(r.client_addr), 'state', r.state,
           'sync_state', r.sync_state, 'slot_name', s.slot_name,
           'sent_lsn', r.sent_lsn::text, 'write_lsn', r.write_lsn::text, 'flush_lsn', r.flush_lsn::text,
           'replay_lsn', r.replay_lsn::text,
           'sent_behind_bytes', pg_wal_lsn_diff(here.position, r.sent_lsn)::bigint,
           'write_behind_bytes', pg_wal_lsn_diff(here.position, r.write_lsn)::bigint,
           'flush_behind_bytes', pg_wal_lsn_diff(here.position, r.flush_lsn)::bigint,
           'replay_behind_bytes', pg_wal_lsn_diff(here.position, r.replay_lsn)::bigint,
           'write_lag_s', extract(epoch FROM r.write_lag)::float8,
           'flush_lag_s', extract(epoch FROM r.flush_lag)::float8,
           'replay_lag_s', extract(epoch FROM r.replay_lag)::float8,
           'reply_age_s', extract(epoch FROM now() - r.reply_time)::float8)
         ORDER BY r.application_name, r.pid), '[]'::json)
        FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid) AS senders,
       (SELECT coalesce(json_agg(json_build_object(
           'slot_name', s.slot_name, 'slot_type', s.slot_type, 'active', s.active, 'wal_status', s.wal_status,
           'restart_lsn', s.restart_lsn::text,
           'retained_bytes', pg_wal_lsn_diff(here.position, s.restart_lsn)::bigint,
           'safe_wal_size', s.safe_wal_size)
         ORDER BY s.slot_name), '[]'::json)
        FROM pg_replication_slots s) AS slots,
       (SELECT json_build_object('status', w.status, 'sender_host', w.sender_host, 'sender_port', w.sender_port,
                                 'received_tli', w.received_tli, 'slot_name', w.slot_name,
                                 'last_message_age_s', extract(epoch FROM now() - w.last_msg_receipt_time)::float8)
        FROM pg_stat_wal_receiver w LIMIT 1) AS upstream
FROM here
"""
# A standby has no WAL file of its own to name its timeline: the last checkpoint (restartpoint) says it,
# or, while it streams, the timeline it receives.
STANDBY_TIMELINE = "SELECT timeline_id FROM pg_control_checkpoint()"


@dataclass
class Sender:
    """A server streaming WAL from this one: a standby (it replays) or a WAL receiver (it only keeps it)."""

    application_name: str
    client_addr: str | None
    state: str | None
    sync_state: str | None
    slot_name: str | None
    sent_lsn: str | None
    write_lsn: str | None
    flush_lsn: str | None
    replay_lsn: str | None
    sent_behind_bytes: int | None
    write_behind_bytes: int | None
    flush_behind_bytes: int | None
    replay_behind_bytes: int | None
    write_lag_s: float | None     # PostgreSQL's own: time for recent WAL to be written there (None: idle)
    flush_lag_s: float | None
    replay_lag_s: float | None
    reply_age_s: float | None     # since its last status message

    @property
    def kind(self) -> str:
        return STANDBY_KIND if self.replay_lsn is not None or self.state == "startup" else RECEIVER_KIND

    @property
    def is_standby(self) -> bool:
        return self.kind == STANDBY_KIND

    def as_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


@dataclass
class Slot:
    slot_name: str
    slot_type: str
    active: bool
    wal_status: str | None        # reserved, extended, unreserved, lost
    restart_lsn: str | None
    retained_bytes: int | None    # WAL the slot keeps on disk behind the current position
    safe_wal_size: int | None     # bytes left before max_slot_wal_keep_size cuts it off (None: no limit)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Upstream:
    """On a standby: the primary it streams from (pg_stat_wal_receiver); None while it does not stream."""

    status: str | None
    sender_host: str | None
    sender_port: int | None
    received_tli: int | None
    slot_name: str | None
    last_message_age_s: float | None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ReplicationStatus:
    role: str                      # primary | standby
    timeline: int | None
    position: str | None           # the primary's current WAL position, or what a standby has replayed
    server: str | None             # host:port this answer came from (None over a Unix socket)
    senders: list[Sender] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    # a standby's own view
    receive_lsn: str | None = None
    replay_paused: bool | None = None
    last_replayed_commit_age_s: float | None = None
    upstream: Upstream | None = None

    @property
    def standbys(self) -> list[Sender]:
        return [s for s in self.senders if s.is_standby]

    @property
    def is_primary(self) -> bool:
        return self.role == PRIMARY

    @property
    def has_replication(self) -> bool:
        """Anything to show: a standby or WAL receiver attached, a slot, or this server is a standby."""
        return bool(self.senders or self.slots) or not self.is_primary

    def as_dict(self) -> dict:
        record = {"role": self.role, "timeline": self.timeline, "position": self.position, "server": self.server,
                  "standbys": [s.as_dict() for s in self.senders if s.is_standby],
                  "wal_receivers": [s.as_dict() for s in self.senders if not s.is_standby],
                  "slots": [s.as_dict() for s in self.slots]}
        if not self.is_primary:
            record |= {"receive_lsn": self.receive_lsn, "replay_paused": self.replay_paused,
                       "last_replayed_commit_age_s": self.last_replayed_commit_age_s,
                       "upstream": self.upstream.as_dict() if self.upstream else None}
        return record


def _rows(conn, query: str) -> list[dict]:
    """Rows as dicts from an SQLAlchemy connection or a psycopg one (the stack's status uses psycopg)."""
    import sqlalchemy as sa

    if isinstance(conn, sa.Connection):
        return [dict(row._mapping) for row in conn.execute(sa.text(query))]
    cursor = conn.execute(query)
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _json(value) -> list | dict | None:
    return json.loads(value) if isinstance(value, str) else value


def _standby_timeline(conn, upstream: Upstream | None) -> int | None:
    if upstream is not None and upstream.received_tli:
        return int(upstream.received_tli)
    try:
        [row] = _rows(conn, STANDBY_TIMELINE)
    except Exception:  # noqa: BLE001 - a role that may not read the control file: the timeline is unknown
        return None
    return int(row["timeline_id"])


def observe(conn) -> ReplicationStatus:
    """Replication as the server behind `conn` sees it (an SQLAlchemy or psycopg connection)."""
    [row] = _rows(conn, QUERY)
    upstream = _json(row["upstream"])
    status = ReplicationStatus(
        role=STANDBY if row["in_recovery"] else PRIMARY,
        timeline=row["wal_timeline"],
        position=row["position"],
        server=f"{row['server_host']}:{row['server_port']}" if row["server_host"] else None,
        senders=[Sender(**sender) for sender in _json(row["senders"])],
        slots=[Slot(**slot) for slot in _json(row["slots"])],
        receive_lsn=row["receive_lsn"],
        replay_paused=row["replay_paused"],
        last_replayed_commit_age_s=row["last_replayed_commit_age_s"],
        upstream=Upstream(**upstream) if upstream else None,
    )
    if not status.is_primary:
        status.timeline = _standby_timeline(conn, status.upstream)
    return status


def observe_engine(engine) -> ReplicationStatus:
    with engine.connect() as conn:
        status = observe(conn)
        conn.rollback()
    return status


def _bytes(value: int | None) -> str:
    from orchestrator_data.units import human_bytes

    return "?" if value is None else human_bytes(value)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def summary_lines(status: ReplicationStatus) -> list[str]:
    """What a DBA reads first, one line each: who this server is, each standby and its lag, each slot."""
    lines = [f"replication: {status.role} on timeline {status.timeline if status.timeline is not None else '?'}"
             + (f" at {status.server}" if status.server else "")]
    if not status.is_primary:
        up = status.upstream
        source = f"from {up.sender_host}:{up.sender_port} ({up.status})" if up else "not streaming"
        paused = ", replay paused" if status.replay_paused else ""
        lines.append(f"  streams {source}, received {status.receive_lsn or '-'}, replayed {status.position}{paused}")
    for sender in status.senders:
        if sender.is_standby:
            lines.append(
                f"  standby {sender.application_name} {sender.state} {sender.sync_state}: behind by "
                f"{_bytes(sender.write_behind_bytes)} written, {_bytes(sender.flush_behind_bytes)} flushed, "
                f"{_bytes(sender.replay_behind_bytes)} replayed; lag write {_seconds(sender.write_lag_s)}, "
                f"flush {_seconds(sender.flush_lag_s)}, replay {_seconds(sender.replay_lag_s)}")
        else:
            lines.append(f"  wal receiver {sender.application_name} {sender.state}: "
                         f"{_bytes(sender.flush_behind_bytes)} not yet flushed")
    for slot in status.slots:
        lines.append(f"  slot {slot.slot_name} ({slot.slot_type}, {'active' if slot.active else 'inactive'}) "
                     f"retains {_bytes(slot.retained_bytes)} of WAL ({slot.wal_status or '-'})")
    return lines


def from_dict(record: dict) -> ReplicationStatus:
    """The status back from `as_dict` (what a health record carries)."""
    def sender(entry: dict) -> Sender:
        return Sender(**{k: v for k, v in entry.items() if k != "kind"})

    upstream = record.get("upstream")
    return ReplicationStatus(
        role=record["role"], timeline=record["timeline"], position=record["position"], server=record["server"],
        senders=[sender(s) for s in record.get("standbys", []) + record.get("wal_receivers", [])],
        slots=[Slot(**s) for s in record.get("slots", [])],
        receive_lsn=record.get("receive_lsn"), replay_paused=record.get("replay_paused"),
        last_replayed_commit_age_s=record.get("last_replayed_commit_age_s"),
        upstream=Upstream(**upstream) if upstream else None)


def observe_or_why(conn) -> tuple[ReplicationStatus | None, str | None]:
    """`observe`, or why it could not (a managed service that hides a view or a function): the caller, a
    health check or a metrics run, carries on without it. A savepoint keeps an SQLAlchemy transaction usable."""
    import sqlalchemy as sa

    from orchestrator_data.redaction import describe_error

    try:
        if isinstance(conn, sa.Connection):
            with conn.begin_nested():
                return observe(conn), None
        return observe(conn), None
    except Exception as exc:  # noqa: BLE001 - what replication looks like is extra; its absence is reported
        return None, describe_error(exc)[:300]
