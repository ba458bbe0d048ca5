"""The failover engine of the local stack: one etcd and N Patroni members (a primary and its streaming
standbys). Patroni decides, fences and promotes; this module starts, stops, observes and asks it.

Layout under `root`: etcd/ (data, log, pid), and one directory per member (patroni.yml, patroni.log,
pgpass, data/). A standby is cloned by Patroni with pg_basebackup and streams through a replication slot
of its own (use_slots); an old primary rejoins through pg_rewind (use_pg_rewind)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator_data.errors import BadInput, OperationFailed
from orchestrator_data.replication import patroni_api
from orchestrator_data.replication.patroni_api import Member, PatroniApiError
from orchestrator_data.replication.patroni_config import API_USER, SUPERUSER, MemberSpec, Passwords, dynamic_config, member_config


class EngineError(OperationFailed):
    """The pair did not reach the state asked of it. The message is safe to print."""


@dataclass(frozen=True)
class Ports:
    """Where the pair listens: PostgreSQL and the REST API of member i at base + i; etcd's client and peer."""

    postgres: int
    api: int
    etcd_client: int
    etcd_peer: int

    def as_dict(self) -> dict:
        return {"postgres": self.postgres, "api": self.api, "etcd_client": self.etcd_client,
                "etcd_peer": self.etcd_peer}


def member_name(index: int) -> str:
    return f"pg{index + 1}"


class HACluster:
    """The pair, given its processes: `members` (stack/patroni.py PatroniMember: spec, prepare, write_config,
    start, stop, is_running, kill, kill_postgres, postmaster_pid, wait_gone, log_tail) and `etcd`
    (stack/etcd.py EtcdService: start, stop, is_running, hosts, url). stack/ha_postgres.py builds it."""

    def __init__(self, root: Path, *, members: list, etcd, ports: Ports, passwords: Passwords, mode: str,
                 bin_dir: Path):
        if len(members) < 2:
            raise BadInput("an HA pair needs at least one standby")
        self.root = root
        self.ports = ports
        self.passwords = passwords
        self.mode = mode
        self.bin_dir = bin_dir
        self.members = members
        self.specs: list[MemberSpec] = [member.spec for member in members]
        self.etcd = etcd

    # -- addresses ------------------------------------------------------------------------------
    @property
    def api_urls(self) -> list[str]:
        return [spec.api_url for spec in self.specs]

    @property
    def api_auth(self) -> tuple[str, str]:
        return API_USER, self.passwords.api

    def member(self, name: str):
        for member in self.members:
            if member.name == name:
                return member
        raise BadInput(f"no member named {name!r} (members: {', '.join(m.name for m in self.members)})")

    def conninfo(self, database: str = "postgres", *, read_write: bool = True, connect_timeout: int = 3) -> str:
        """A libpq connection string naming every member: libpq tries each in turn and, with
        target_session_attrs=read-write, keeps the one that accepts writes. Carries the superuser's password."""
        hosts = ",".join("127.0.0.1" for _ in self.specs)
        ports = ",".join(str(spec.pg_port) for spec in self.specs)
        attrs = "read-write" if read_write else "any"
        return (f"host={hosts} port={ports} dbname={database} user={SUPERUSER} "
                f"password={self.passwords.superuser} target_session_attrs={attrs} connect_timeout={connect_timeout}")

    def member_conninfo(self, name: str, database: str = "postgres") -> str:
        spec = self.member(name).spec
        return (f"host=127.0.0.1 port={spec.pg_port} dbname={database} user={SUPERUSER} "
                f"password={self.passwords.superuser} connect_timeout=3")

    # -- lifecycle ------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return any(member.is_running() for member in self.members)

    def write_configs(self) -> None:
        for member in self.members:
            member.prepare()
            member.write_config(member_config(member.spec, etcd_hosts=self.etcd.hosts, passwords=self.passwords,
                                              bin_dir=self.bin_dir, mode=self.mode))

    def start(self, timeout_s: float = 120.0) -> list[Member]:
        """etcd, then every member at once (the first to take etcd's initialize key runs initdb, the others
        clone it); returns once there is a running leader and every standby streams. Idempotent."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.etcd.start()
        self.write_configs()
        for member in self.members:
            member.start()
        # first streaming under the mode etcd holds, then the settings' mode (it may have changed since)
        self.wait_healthy(timeout_s, require_sync=False)
        self.apply_dynamic_config()
        return self.wait_healthy(timeout_s)

    def apply_dynamic_config(self) -> None:
        """The timings and replication mode in etcd as the settings say (bootstrap.dcs only applies to a
        new cluster; a changed REPLICATION_MODE reaches a running one through this)."""
        leader = self.leader()
        wanted = dynamic_config(self.mode)
        patroni_api.patch_config(leader.api_url.removesuffix("/patroni"), self.api_auth, wanted)

    def wait_healthy(self, timeout_s: float = 120.0, *, require_sync: bool = True) -> list[Member]:
        """Wait for a running leader and every other member streaming from it (one of them synchronous
        when the mode says so)."""
        deadline = time.monotonic() + timeout_s
        last: list[Member] | str = "no answer"
        while time.monotonic() < deadline:
            for member in self.members:
                if not member.is_running():
                    raise EngineError(f"Patroni member {member.name} exited. Last lines of {member.spec.log_file}:\n"
                                     f"{member.log_tail()}")
            try:
                members = patroni_api.cluster(self.api_urls)
            except PatroniApiError as exc:
                last = str(exc)
            else:
                last = members
                leader = patroni_api.leader(members)
                others = [m for m in members if m is not leader]
                # in sync mode a standby counts once Patroni made it synchronous: before that, it may not
                # be promoted, and a crashed primary is restarted in place rather than failed over
                synchronous = (self.mode == "async" or not require_sync
                               or any(m.role == "sync_standby" for m in others))
                if (leader is not None and len(members) == len(self.members) and synchronous
                        and all(m.state == "streaming" for m in others)):
                    return members
            time.sleep(0.2)
        logs = "\n".join(f"{m.name}: {m.log_tail(5)}" for m in self.members)
        raise EngineError(f"the HA pair did not become healthy in {timeout_s:.0f} s (last seen: {_describe(last)})."
                         f" Last lines of the members' logs:\n{logs}")

    def stop(self) -> dict[str, bool]:
        """Standbys first, then the leader (stopped first, the leader would hand over to a standby only to
        have it stopped next), then etcd. Every PostgreSQL is stopped too, even one whose Patroni died."""
        stopped: dict[str, bool] = {}
        try:
            leader_name = self.leader().name
        except (PatroniApiError, EngineError):
            leader_name = None
        ordered = sorted(self.members, key=lambda m: m.name == leader_name)
        for member in ordered:
            stopped[f"patroni:{member.name}"] = member.stop()
        stopped["etcd"] = self.etcd.stop()
        return stopped

    # -- observing and asking -------------------------------------------------------------------
    def cluster(self) -> list[Member]:
        return patroni_api.cluster(self.api_urls)

    def leader(self) -> Member:
        found = patroni_api.leader(self.cluster())
        if found is None:
            raise EngineError("the HA pair has no running leader")
        return found

    def switchover(self, to: str | None = None, timeout_s: float = 60.0) -> tuple[Member, Member]:
        """A planned switchover through Patroni: the leader hands over to `to` (or the healthiest standby).
        Returns (old leader, new leader) once the new one runs as leader."""
        members = self.cluster()
        old = patroni_api.leader(members)
        if old is None:
            raise EngineError("the HA pair has no running leader: Patroni fails over by itself, not by request")
        eligible = [m.name for m in members if m.state == "streaming"
                    and (self.mode == "async" or m.role == "sync_standby")]
        if not eligible:
            raise EngineError(f"no standby may take over now ({_describe(members)}): wait until one streams"
                             + ("" if self.mode == "async" else " as the synchronous standby"))
        if to is not None:
            self.member(to)  # a known name
            if to == old.name:
                raise BadInput(f"{to} is already the primary")
            candidate = next((m for m in members if m.name == to), None)
            if to not in eligible:
                state = f"{candidate.role}/{candidate.state}" if candidate else "absent"
                raise BadInput(f"{to} cannot take over now ({state}); eligible: {', '.join(eligible)}")
        patroni_api.switchover(old.api_url.removesuffix("/patroni"), self.api_auth, old.name, to, timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                new = patroni_api.leader(self.cluster())
            except PatroniApiError:
                new = None
            if new is not None and new.name != old.name:
                return old, new
            time.sleep(0.2)
        raise EngineError(f"the switchover from {old.name} did not finish in {timeout_s:.0f} s")


def _describe(last) -> str:
    if isinstance(last, str):
        return last
    return ", ".join(f"{m.name} {m.role}/{m.state}" for m in last) or "no member"
