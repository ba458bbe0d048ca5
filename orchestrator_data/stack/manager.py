"""The embedded default stack: every service whose URL is not configured runs locally under the
state directory. `stack.json` there records the ports the running stack was started on, so every
other command finds it without any URL set."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from orchestrator_data.errors import BadInput
from orchestrator_data.settings import Settings
from orchestrator_data.stack.archiver import ArchiverService, recovery_conf
from orchestrator_data.stack.common import Secrets, ServiceStatus, file_lock, write_atomically
from orchestrator_data.stack.elasticsearch import ElasticsearchService
from orchestrator_data.stack.postgres import PostgresService
from orchestrator_data.stack.redis import RedisService

SERVICES = ("postgres", "redis", "elasticsearch")
# The one mapping from a service to where its URL is configured: the Settings field (which is also
# the Endpoints field) and the environment variable a user sets. "dagster" is Dagster's own storage.
URL_FIELDS = {"postgres": "database_url", "redis": "redis_url", "elasticsearch": "elasticsearch_url",
              "dagster": "dagster_pg_url"}
URL_VARIABLES = {"postgres": "DATABASE_URL", "redis": "REDIS_URL", "elasticsearch": "ELASTICSEARCH_URL",
                 "dagster": "DAGSTER_PG_URL"}


@dataclass
class Endpoints:
    """The URL each service is reached at, and where it came from ('environment' or 'stack')."""

    database_url: str | None
    redis_url: str | None
    elasticsearch_url: str | None
    dagster_pg_url: str | None
    sources: dict[str, str | None]

    def url(self, service: str) -> str | None:
        return getattr(self, URL_FIELDS[service])


class Stack:
    def __init__(self, settings: Settings, standbys: int | None = None):
        self.settings = settings
        # > 0: PostgreSQL runs as an HA pair (stack/ha_postgres.py); `stack start --standby` sets 1
        self.standbys = settings.postgres_standbys if standbys is None else standbys
        self.root = Path(settings.state_dir).expanduser().resolve()
        self.state_file = self.root / "stack.json"
        self.secrets = Secrets(self.root / "secrets.json")

    # -- which services are ours --------------------------------------------------------------
    def configured_externally(self, name: str) -> bool:
        return bool(getattr(self.settings, URL_FIELDS[name]))

    def managed(self) -> list[str]:
        return [name for name in SERVICES if not self.configured_externally(name)]

    def _recorded_ports(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _port(self, name: str, for_start: bool) -> int:
        configured = getattr(self.settings, f"stack_{name}_port")
        if for_start:
            return configured
        return int(self._recorded_ports().get(name, {}).get("port", configured))

    def service(self, name: str, for_start: bool = False):
        port = self._port(name, for_start)
        if name == "postgres" and self._high_availability(for_start):
            from orchestrator_data.stack.ha_postgres import HAPostgresService

            return HAPostgresService(self.root, self.secrets, self.settings, standbys=self.standbys or None)
        if name == "postgres":
            return PostgresService(self.root, port, self.secrets, recovery_conf=self._recovery_conf(sync_now=False))
        if name == "redis":
            return RedisService(self.root, port, self.secrets)
        if name == "elasticsearch":
            return ElasticsearchService(self.root, port, heap=self.settings.stack_elasticsearch_heap,
                                        java_options=self.settings.stack_elasticsearch_java_opts)
        raise KeyError(name)

    def _high_availability(self, for_start: bool) -> bool:
        """The pair when asked for, or when the stack was started as one and its pair is still there (a
        plain `stack start` does not swap the pair's database for the single server's)."""
        recorded = self._recorded_ports().get("postgres")
        if recorded is None or for_start:
            return self.standbys > 0 or bool(recorded and recorded.get("ha") and (self.root / "ha" / "ha.json").exists())
        return bool(recorded.get("ha"))

    # -- the WAL archiver (a service of the local stack when WAL_ARCHIVE_MODE is not off) ---------
    def _recovery_conf(self, sync_now: bool) -> str:
        s = self.settings
        return recovery_conf(s.wal_archive_mode, s.wal_archive_slot, s.wal_slot_alert_bytes, sync_now=sync_now)

    def archiver(self) -> ArchiverService:
        from orchestrator_data.settings import exported_environment

        return ArchiverService(self.root, self.settings, exported_environment(self.settings))

    def archives(self) -> bool:
        return self.settings.wal_archive_mode != "off" and not self.configured_externally("postgres")

    def _start_archiver(self, on_started=None) -> ServiceStatus:
        """After PostgreSQL: the archiver, then (sync mode) the server told to wait for it. In that order,
        or the server's own start (CREATE DATABASE) and the archiver's would wait for a standby not there yet."""
        postgres = self.service("postgres")
        status = self.archiver().start(postgres.url("postgres"))
        if postgres.write_recovery_conf(self._recovery_conf(sync_now=True)):
            postgres.reload()
        if on_started:
            on_started(status)
        return status

    # -- operations ---------------------------------------------------------------------------
    def start(self, only: list[str] | None = None, on_started=None) -> list[ServiceStatus]:
        """Start each managed service (idempotent: a running one is only brought up to date)."""
        results = []
        self.secrets.read()  # a corrupt secrets.json stops the start before anything is touched
        with file_lock(self.root / "stack.lock"):
            recorded = self._recorded_ports()
            for name in self.managed():
                if only and name not in only:
                    continue
                running = self.service(name)
                if name == "postgres" and self.standbys > 0 and running.is_running() and not hasattr(running, "ha"):
                    raise BadInput("the local PostgreSQL runs as a single server: stop it (`stack stop --only "
                                   "postgres`) before starting the HA pair, which is a new cluster of its own")
                if running.is_running():
                    # start() of a running service only brings it up to date (e.g. the dagster login)
                    status = running.start()
                else:
                    status = self.service(name, for_start=True).start()
                    recorded[name] = {"port": status.port, **({"ha": True} if "ha" in status.detail else {})}
                    self._write_state(recorded)
                results.append(status)
                if on_started:
                    on_started(status)
            if self.archives() and (not only or "postgres" in only or "archiver" in only):
                results.append(self._start_archiver(on_started))
        return results

    def stop(self, only: list[str] | None = None) -> dict[str, bool]:
        """Stop the managed services, keeping their data. Returns whether each was running."""
        stopped = {}
        with file_lock(self.root / "stack.lock"):
            if not only or "postgres" in only or "archiver" in only:
                archiver = self.archiver()
                if archiver.is_running() or self.archives():
                    postgres = self.service("postgres")
                    # first: a server left waiting for a stopped archiver would block every commit
                    if postgres.is_running() and postgres.write_recovery_conf(self._recovery_conf(sync_now=False)):
                        postgres.reload()
                    stopped["archiver"] = archiver.stop()
            for name in reversed(SERVICES):
                if only and name not in only:
                    continue
                stopped[name] = self.service(name).stop()
        return stopped

    def status(self) -> list[ServiceStatus]:
        statuses = [self.service(name).status() for name in self.managed()]
        archiver = self.archiver()
        if self.archives() or archiver.is_running():
            statuses.append(archiver.status())
        return statuses

    def _write_state(self, recorded: dict) -> None:
        write_atomically(self.state_file, json.dumps(recorded, indent=2), mode=0o644)

    # -- endpoints ----------------------------------------------------------------------------
    def endpoints(self) -> Endpoints:
        s = self.settings
        recorded = self._recorded_ports()
        sources: dict[str, str | None] = {}

        def pick(name: str, external: str | None, from_stack):
            if external:
                sources[name] = "environment"
                return external
            if name in recorded:
                sources[name] = "stack"
                return from_stack()
            sources[name] = None
            return None

        pg = self.service("postgres")
        database_url = pick("postgres", s.database_url, pg.url)
        redis_url = pick("redis", s.redis_url, self.service("redis").url)
        es_url = pick("elasticsearch", s.elasticsearch_url, self.service("elasticsearch").url)
        if s.dagster_pg_url:
            dagster_url, sources["dagster"] = s.dagster_pg_url, "environment"
        elif "postgres" in recorded and not s.database_url:
            dagster_url, sources["dagster"] = pg.dagster_url(), "stack"
        else:
            dagster_url, sources["dagster"] = None, None
        return Endpoints(database_url, redis_url, es_url, dagster_url, sources)


def missing_endpoint_message(name: str) -> str:
    variable = URL_VARIABLES[name]
    what = "PostgreSQL" if name == "dagster" else name
    return (f"{variable} is not set and the local stack has no {what}: "
            f"run `orchestrator-data stack start` or set {variable}")
