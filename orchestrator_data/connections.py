"""One way to build each service's client, for the CLI and the Dagster resources alike.

A URL comes from the settings, else from the local stack (`resolve_url`); pool sizes and
credentials come from the settings unless the caller (a resource with a field set) overrides them.
"""

from __future__ import annotations

from contextlib import suppress

from orchestrator_data.errors import BadInput
from orchestrator_data.health import ServiceHealth
from orchestrator_data.postgres import client as pg
from orchestrator_data.redis import client as rd
from orchestrator_data.redis.setup import redis_status
from orchestrator_data.search import client as es
from orchestrator_data.settings import Settings
from orchestrator_data.stack import Endpoints, Stack, missing_endpoint_message

SERVICES = ("postgres", "redis", "elasticsearch")


class ServiceNotConfigured(BadInput):
    """No URL is set for a service and the local stack does not provide it."""


def endpoints(settings: Settings) -> Endpoints:
    return Stack(settings).endpoints()


def resolve_url(service: str, settings: Settings) -> str:
    """The URL of `service` ('postgres', 'redis', 'elasticsearch' or 'dagster') from settings or the stack."""
    url = endpoints(settings).url(service)
    if url is None:
        raise ServiceNotConfigured(missing_endpoint_message(service))
    return url


def _given(value, default):
    return default if value is None else value


def postgres_engine(settings: Settings, url: str | None = None, *, pool_size: int | None = None,
                    max_overflow: int | None = None, pool_timeout: float | None = None,
                    tls: pg.TlsOptions = pg.TlsOptions(), application_name: str = "orchestrator-data",
                    reconnect_timeout_s: float | None = None):
    """A pooled engine; the pool is DATABASE_POOL_SIZE / _MAX_OVERFLOW / _POOL_TIMEOUT unless given. It follows
    the primary through a failover, reconnecting for DATABASE_RECONNECT_TIMEOUT_S (replication/follow.py)."""
    pool = pg.PoolOptions(size=_given(pool_size, settings.database_pool_size),
                          max_overflow=_given(max_overflow, settings.database_max_overflow),
                          timeout=_given(pool_timeout, settings.database_pool_timeout))
    url = url or resolve_url("postgres", settings)
    budget = _given(reconnect_timeout_s, settings.database_reconnect_timeout_s)
    return pg.create_engine(url, pool=pool, tls=tls, application_name=application_name,
                            reconnect_timeout_s=default_reconnect_timeout(url) if budget is None else budget)


# how long a failover takes with Patroni's settings tuned for it, with room to spare
FOLLOW_PRIMARY_S = 30.0


def default_reconnect_timeout(url: str) -> float:
    """Unset DATABASE_RECONNECT_TIMEOUT_S: wait for a primary only where the URL says there is more than one
    server to find it among (several hosts, or target_session_attrs); a lone server that is down fails at once."""
    from orchestrator_data import urls

    parsed = urls.parse_postgres_url(url)
    replicated = bool(parsed.more_hosts) or parsed.param("target_session_attrs") is not None \
        or "," in (parsed.param("host") or "")
    return FOLLOW_PRIMARY_S if replicated else 0.0


def postgres_read_engine(settings: Settings, *, application_name: str = "orchestrator-data-read"):
    """An engine for read-only work (exports): DATABASE_READ_URL (a standby) when set, else DATABASE_URL's."""
    return postgres_engine(settings, settings.database_read_url or None, application_name=application_name)


def redis_client(settings: Settings, url: str | None = None, *, max_connections: int | None = None,
                 socket_timeout: float = 5.0, retries: int = 3):
    """A client on a blocking pool of REDIS_MAX_CONNECTIONS unless given."""
    return rd.create_client(url or resolve_url("redis", settings),
                            max_connections=_given(max_connections, settings.redis_max_connections),
                            socket_timeout=socket_timeout, retries=retries)


def elasticsearch_credentials(settings: Settings) -> dict:
    """API key, basic auth and CA certificate from the settings, as es.create_client takes them."""
    return {
        "api_key": settings.elasticsearch_api_key.get_secret_value() if settings.elasticsearch_api_key else None,
        "username": settings.elasticsearch_username,
        "password": settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else None,
        "ca_certs": str(settings.elasticsearch_ca_cert) if settings.elasticsearch_ca_cert else None,
    }


def elasticsearch_client(settings: Settings, url: str | None = None, *, credentials: dict | None = None,
                         request_timeout: float = 30.0, max_retries: int = 3):
    """A client with the settings' credentials, each overridden by a value given in `credentials`."""
    given = {name: value for name, value in (credentials or {}).items() if value}
    return es.create_client(url or resolve_url("elasticsearch", settings),
                            **(elasticsearch_credentials(settings) | given),
                            request_timeout=request_timeout, max_retries=max_retries)


def _postgres_health(settings: Settings, url: str, attempts: int) -> ServiceHealth:
    engine = postgres_engine(settings, url)
    try:
        return pg.check_health(engine, attempts=attempts)
    finally:
        engine.dispose()


def _redis_health(settings: Settings, url: str, attempts: int) -> ServiceHealth:
    client = redis_client(settings, url)
    try:
        health = rd.check_health(client)
        if health.ok:
            # the keyspace's own figures: cache hit rate and queue depths
            keyspace = redis_status(client)
            health.detail["cache_hit_rate"] = keyspace.cache_hit_rate
            health.detail["queues"] = keyspace.queues
        return health
    finally:
        with suppress(Exception):
            client.close()


def _elasticsearch_health(settings: Settings, url: str, attempts: int) -> ServiceHealth:
    client = elasticsearch_client(settings, url)
    try:
        return es.check_health(client)
    finally:
        client.close()


_HEALTH = {"postgres": _postgres_health, "redis": _redis_health, "elasticsearch": _elasticsearch_health}


def check_services(settings: Settings, services: tuple[str, ...] = SERVICES, attempts: int = 2) -> list[ServiceHealth]:
    """One health record per service, in order; an unconfigured service is reported, not raised."""
    found = endpoints(settings)
    results = []
    for name in services:
        url = found.url(name)
        if url is None:
            results.append(ServiceHealth(service=name, ok=False, error=missing_endpoint_message(name)))
            continue
        health = _HEALTH[name](settings, url, attempts)
        health.detail["source"] = found.sources.get(name)
        results.append(health)
    return results
