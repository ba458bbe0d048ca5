"""Redis as a Dagster resource: one client on a bounded connection pool per run."""

from __future__ import annotations

import dagster as dg
import redis
from pydantic import Field, PrivateAttr

from orchestrator_data.connections import ServiceNotConfigured, resolve_url
from orchestrator_data.health import ServiceHealth
from orchestrator_data.redis import client
from orchestrator_data.settings import load_settings


class RedisResource(dg.ConfigurableResource):
    """Sessions, cache, limits, execution state and queues. Leave `redis_url` unset to use the local stack."""

    redis_url: str | None = Field(None, description="redis:// or rediss:// URL; set through dg.EnvVar('REDIS_URL').")
    max_connections: int = Field(20, description="Upper bound of the connection pool.")
    socket_timeout: float = Field(5.0, description="Seconds before a command or connect times out.")
    retries: int = Field(3, description="Retries, with exponential backoff, of a command on a transient error.")

    _client: redis.Redis | None = PrivateAttr(None)

    def url(self) -> str:
        return self.redis_url or resolve_url("redis", load_settings())

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = client.create_client(self.url(), max_connections=self.max_connections,
                                                socket_timeout=self.socket_timeout, retries=self.retries)
        return self._client

    def health(self) -> ServiceHealth:
        try:
            target = self.client
        except ServiceNotConfigured as exc:
            return ServiceHealth(service="redis", ok=False, error=str(exc))
        return client.check_health(target)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client.connection_pool.disconnect()
            self._client = None
