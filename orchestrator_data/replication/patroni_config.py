"""The Patroni configuration of one member of the local HA pair, generated from settings.

One YAML per member (stack/patroni.py writes it atomically, mode 0600, owned by the server's OS user): it
holds the superuser, replication and REST API passwords, so it is never printed. The dynamic part (`bootstrap.dcs`)
is what Patroni keeps in etcd; `engine.py` applies it again on every start, so a changed REPLICATION_MODE
takes effect on a cluster bootstrapped before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

SCOPE = "orchestrator"
SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
API_USER = "patroni"
REPLICATION_MODES = ("async", "sync", "strict")

# Fast failover within Patroni's own bounds (patroni/config.py _validate_and_adjust_timeouts: ttl >= 20,
# loop_wait >= 1, retry_timeout >= 3, loop_wait + 2 * retry_timeout <= ttl). Why each: docs/failover.md.
TIMINGS = {
    # how long the leader key lives without a renewal: only what a *whole member* lost waits for
    "ttl": 20,
    # one HA loop a second: a crashed postgres is seen within a second
    "loop_wait": 1,
    # etcd or PostgreSQL unreachable this long → the primary demotes itself, well before the ttl runs out
    "retry_timeout": 5,
    # a crashed primary is not restarted in place: fail over at once when a healthy standby exists
    "primary_start_timeout": 0,
}


@dataclass(frozen=True)
class MemberSpec:
    """Where one member lives: its directory (config, log, pgpass), data directory and ports."""

    name: str
    root: Path
    pg_port: int
    api_port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config_file(self) -> Path:
        return self.root / "patroni.yml"

    @property
    def log_file(self) -> Path:
        return self.root / "patroni.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@dataclass(frozen=True)
class Passwords:
    superuser: str
    replication: str
    api: str

    def __repr__(self) -> str:  # never in a log or a traceback
        return "Passwords(***)"


def dynamic_config(mode: str) -> dict:
    """What Patroni keeps in etcd for the whole cluster: timings, replication mode, rewind, slots."""
    if mode not in REPLICATION_MODES:
        raise ValueError(f"replication mode {mode!r}: expected one of {', '.join(REPLICATION_MODES)}")
    return {
        **TIMINGS,
        # sync: only the synchronous standby may be promoted (no acknowledged commit lost); without a
        # healthy standby the primary goes on alone. strict: it then refuses to acknowledge commits.
        "synchronous_mode": mode != "async",
        "synchronous_mode_strict": mode == "strict",
        # an async standby further behind than this is not promoted automatically
        "maximum_lag_on_failover": 1 << 20,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": {
                "max_connections": 200,
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "wal_keep_size": "128MB",
                "hot_standby": "on",
                "wal_log_hints": "on",
            },
        },
    }


def member_config(spec: MemberSpec, *, etcd_hosts: str, passwords: Passwords, bin_dir: Path, mode: str,
                  initdb_locale: str = "C.UTF-8") -> dict:
    """The whole YAML document of one member."""
    return {
        "scope": SCOPE,
        "name": spec.name,
        "log": {"level": "INFO", "format": "%(asctime)s %(levelname)s: %(message)s"},
        "restapi": {
            "listen": f"127.0.0.1:{spec.api_port}",
            "connect_address": f"127.0.0.1:{spec.api_port}",
            # reading the state is open on loopback; a switchover or a config change needs the password
            "authentication": {"username": API_USER, "password": passwords.api},
        },
        "etcd3": {"hosts": etcd_hosts, "protocol": "http"},
        "bootstrap": {
            "dcs": dynamic_config(mode),
            "initdb": [{"encoding": "UTF8"}, {"locale-provider": "builtin"}, {"builtin-locale": initdb_locale},
                       "data-checksums"],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{spec.pg_port}",
            "connect_address": f"127.0.0.1:{spec.pg_port}",
            "data_dir": str(spec.data_dir),
            "bin_dir": str(bin_dir),
            "pgpass": str(spec.root / "pgpass"),
            "authentication": {
                "superuser": {"username": SUPERUSER, "password": passwords.superuser},
                "replication": {"username": REPLICATION_USER, "password": passwords.replication},
            },
            "parameters": {
                # TCP only, as the single-server stack: a socket path in a deep directory may be too long
                "unix_socket_directories": "",
                "shared_preload_libraries": "pg_stat_statements",
                "log_min_duration_statement": 1000,
            },
            "pg_hba": [
                "local all all trust",
                f"host replication {REPLICATION_USER} 127.0.0.1/32 scram-sha-256",
                "host all all 127.0.0.1/32 scram-sha-256",
            ],
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }


def render(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False)
