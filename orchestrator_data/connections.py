"""Clients for the configured services, built from settings and the stack's endpoints."""

from __future__ import annotations

from contextlib import suppress

from orchestrator_data.health import ServiceHealth
from orchestrator_data.postgres import client as pg
from orchestrator_data.redis import client as rd
from orchestrator_data.redis.setup import redis_status
from orchestrator_data.search import client as es
from orchestrator_data.settings import Settings
from orchestrator_data.stack import Endpoints, Stack, missing_endpoint_message


def endpoints(settings: Settings) -> Endpoints:
    return Stack(settings).endpoints()


def postgres_engine(settings: Settings, url: str):
    return pg.create_engine(
        url,
        pool=pg.PoolOptions(size=settings.database_pool_size, max_overflow=settings.database_max_overflow,
                            timeout=settings.database_pool_timeout),
    )


def redis_client(settings: Settings, url: str):
    return rd.create_client(url, max_connections=settings.redis_max_connections)


def elasticsearch_credentials(settings: Settings) -> dict:
    """API key, basic auth and CA certificate from the settings, as es.create_client takes them."""
    return {
        "api_key": settings.elasticsearch_api_key.get_secret_value() if settings.elasticsearch_api_key else None,
        "username": settings.elasticsearch_username,
        "password": settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else None,
        "ca_certs": str(settings.elasticsearch_ca_cert) if settings.elasticsearch_ca_cert else None,
    }


def elasticsearch_client(settings: Settings, url: str):
    return es.create_client(url, **elasticsearch_credentials(settings))


def check_services(settings: Settings, services: tuple[str, ...] = ("postgres", "redis", "elasticsearch"),
                   attempts: int = 2) -> list[ServiceHealth]:
    """One health record per service, in order; an unconfigured service is reported, not raised."""
    found = endpoints(settings)
    results = []
    for name in services:
        url = {"postgres": found.database_url, "redis": found.redis_url,
               "elasticsearch": found.elasticsearch_url}[name]
        if url is None:
            results.append(ServiceHealth(service=name, ok=False, error=missing_endpoint_message(name)))
            continue
        if name == "postgres":
            engine = postgres_engine(settings, url)
            try:
                health = pg.check_health(engine, attempts=attempts)
            finally:
                engine.dispose()
        elif name == "redis":
            client = redis_client(settings, url)
            try:
                health = rd.check_health(client)
                if health.ok:
                    # the keyspace's own figures: cache hit rate and queue depths
                    keyspace = redis_status(client)
                    health.detail["cache_hit_rate"] = keyspace.cache_hit_rate
                    health.detail["queues"] = keyspace.queues
            finally:
                with suppress(Exception):
                    client.close()
        else:
            client = elasticsearch_client(settings, url)
            try:
                health = es.check_health(client)
            finally:
                client.close()
        health.detail["source"] = found.sources.get(name)
        results.append(health)
    return results


class ServiceNotConfigured(Exception):
    """No URL is set for a service and the local stack does not provide it."""


def resolve_url(service: str, settings: Settings) -> str:
    """The URL of `service` ('postgres', 'redis', 'elasticsearch' or 'dagster') from settings or the stack."""
    found = endpoints(settings)
    url = {"postgres": found.database_url, "redis": found.redis_url,
           "elasticsearch": found.elasticsearch_url, "dagster": found.dagster_pg_url}[service]
    if url is None:
        if service == "dagster":
            raise ServiceNotConfigured("DAGSTER_PG_URL is not set and the local stack has no PostgreSQL: "
                                      "run `orchestrator-data stack start` or set DAGSTER_PG_URL")
        raise ServiceNotConfigured(missing_endpoint_message(service))
    return url
