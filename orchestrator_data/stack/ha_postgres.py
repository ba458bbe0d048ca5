"""The HA pair as the local stack's `postgres` service (`stack start --standby`, POSTGRES_STANDBYS):
the same face as the single server (url, dagster_url, start, stop, status), backed by etcd and Patroni.

Its ports are fixed at its first start and kept in `ha/ha.json` under the state directory, as stack.json
keeps the others': member i listens on STACK_POSTGRES_PORT + i (PostgreSQL) and STACK_PATRONI_PORT + i
(REST API); etcd on STACK_ETCD_PORT (clients) and STACK_ETCD_PORT + 1 (peers)."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator_data.replication.engine import EngineError, HACluster, Ports, member_name
from orchestrator_data.replication.patroni_api import PatroniApiError
from orchestrator_data.replication.patroni_config import MemberSpec, Passwords
from orchestrator_data.stack.common import Secrets, ServiceStatus, ensure_port_free, write_atomically
from orchestrator_data.stack.etcd import EtcdService
from orchestrator_data.stack.patroni import PatroniMember
from orchestrator_data.stack.postgres import (
    APP_DATABASE,
    DAGSTER_DATABASE,
    DAGSTER_LOGIN,
    SUPERUSER,
    PostgresService,
    bin_dir,
)
from orchestrator_data.urls import make_url, parse_postgres_url

HA_DIR = "ha"


def build_cluster(root: Path, *, standbys: int, ports: Ports, passwords: Passwords, mode: str,
                  pg_ports: list[int] | None = None, api_ports: list[int] | None = None) -> HACluster:
    """The engine with its processes: member i under root/pg<i+1> on the ports given (default: base + i)."""
    count = standbys + 1
    pg_ports = pg_ports or [ports.postgres + i for i in range(count)]
    api_ports = api_ports or [ports.api + i for i in range(count)]
    members = [PatroniMember(MemberSpec(member_name(i), root / member_name(i), pg_ports[i], api_ports[i]))
               for i in range(count)]
    etcd = EtcdService(root / "etcd", ports.etcd_client, ports.etcd_peer)
    return HACluster(root, members=members, etcd=etcd, ports=ports, passwords=passwords, mode=mode,
                     bin_dir=bin_dir())


def passwords(secrets: Secrets) -> Passwords:
    # the superuser's password is the single server's: every URL of the stack keeps its form
    return Passwords(superuser=secrets.get("postgres_password"), replication=secrets.get("replication_password"),
                     api=secrets.get("patroni_api_password"))


def ha_state_file(stack_root: Path) -> Path:
    return stack_root / HA_DIR / "ha.json"


def recorded_layout(stack_root: Path) -> dict | None:
    try:
        return json.loads(ha_state_file(stack_root).read_text())
    except (FileNotFoundError, ValueError):
        return None


class HAPostgresService(PostgresService):
    """`postgres` of the local stack when it runs as an HA pair. URLs name the current primary."""

    def __init__(self, stack_root: Path, secrets: Secrets, settings, *, standbys: int | None = None):
        # the layout of the first start holds for the pair's life (its data directories and ports)
        layout = recorded_layout(stack_root) or {
            "standbys": max(1, standbys or settings.postgres_standbys),
            "ports": Ports(settings.stack_postgres_port, settings.stack_patroni_port,
                           settings.stack_etcd_port, settings.stack_etcd_port + 1).as_dict()}
        self.layout = layout
        ports = Ports(**layout["ports"])
        super().__init__(stack_root, ports.postgres, secrets)
        self.stack_root = stack_root
        self.ha = build_cluster(stack_root / HA_DIR, standbys=layout["standbys"], ports=ports,
                                passwords=passwords(secrets), mode=settings.replication_mode)

    # -- URLs: every member, the primary first (libpq keeps the one that takes writes) ----------------
    def primary_port(self) -> int:
        try:
            return self.ha.leader().port
        except (PatroniApiError, EngineError):
            return self.port

    def url(self, database: str = APP_DATABASE) -> str:
        return self._members_url(SUPERUSER, self.secrets.get("postgres_password"), database)

    def dagster_url(self) -> str:
        # the current primary only: dagster-postgres hands its URL to SQLAlchemy's psycopg2 dialect,
        # which does not read libpq's multi-host form; Dagster's processes resolve it again when they start
        return make_url("postgresql", "127.0.0.1", self.primary_port(), username=DAGSTER_LOGIN,
                        password=self.secrets.get("dagster_password"), database=DAGSTER_DATABASE)

    def _members_url(self, user: str, password: str | None, database: str) -> str:
        """Every member, the current primary first, with target_session_attrs=read-write: a process
        that keeps its URL (the Dagster daemon, a worker, a long sync) follows the primary through a
        failover (replication/follow.py retries while no member takes writes)."""
        first = self.primary_port()
        ports = [first, *(spec.pg_port for spec in self.ha.specs if spec.pg_port != first)]
        single = parse_postgres_url(make_url("postgresql", "127.0.0.1", ports[0], username=user, password=password,
                                             database=database))
        return single.replace(more_hosts=tuple(("127.0.0.1", port) for port in ports[1:]),
                              query=(("target_session_attrs", "read-write"),)).render()

    def multi_host_conninfo(self, database: str = APP_DATABASE) -> str:
        """Every member, the writable one wanted (libpq's target_session_attrs=read-write)."""
        return self.ha.conninfo(database)

    # -- lifecycle ----------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.ha.is_running()

    def start(self) -> ServiceStatus:
        if not self.ha.is_running():
            for spec in self.ha.specs:
                ensure_port_free(spec.pg_port, f"PostgreSQL member {spec.name}", "STACK_POSTGRES_PORT")
                ensure_port_free(spec.api_port, f"Patroni member {spec.name}", "STACK_PATRONI_PORT")
            if not self.ha.etcd.is_running():
                ensure_port_free(self.ha.ports.etcd_client, "etcd", "STACK_ETCD_PORT")
                ensure_port_free(self.ha.ports.etcd_peer, "etcd (peers)", "STACK_ETCD_PORT")
        self.ha.start()
        write_atomically(ha_state_file(self.stack_root), json.dumps(self.layout, indent=2), mode=0o644)
        self._ensure_databases()
        return self.status()

    def stop(self) -> bool:
        return any(self.ha.stop().values())

    def write_recovery_conf(self, text: str | None = None) -> bool:
        return False  # Patroni owns the members' configuration; the WAL archive is not wired to the pair

    def reload(self) -> None:
        return None

    def status(self) -> ServiceStatus:
        running = self.ha.is_running()
        status = ServiceStatus(name=self.name, running=running, url=self.url(), port=self.port,
                               data_dir=str(self.ha.root), log_file=None)
        ha: dict = {"mode": self.ha.mode, "etcd": self.ha.etcd.url, "members": []}
        if running:
            try:
                members = self.ha.cluster()
            except PatroniApiError as exc:
                ha["error"] = exc.one_line()
                members = []
            ha["members"] = [m.public() for m in members]
            leader = next((m for m in members if m.is_leader), None)
            if leader is not None:
                status.port = leader.port
                member = self.ha.member(leader.name)
                status.pid = member.postmaster_pid()
                status.data_dir = str(member.spec.data_dir)
                status.log_file = str(member.spec.log_file)
                status.version = self._version()
            else:
                status.running = False
                ha.setdefault("error", "no running leader")
        status.detail["ha"] = ha
        return status

    def _version(self) -> str | None:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=5) as conn:
                return conn.execute("SHOW server_version").fetchone()[0]
        except psycopg.Error:
            return None
