"""Redis as a Dagster resource: one client on a bounded connection pool per run."""

from __future__ import annotations

import dagster as dg
import redis
from pydantic import Field, PrivateAttr

from orchestrator_data import connections
from orchestrator_data.health import ServiceHealth
from orchestrator_data.redis import client
from resources._base import SettingsResource


class RedisResource(SettingsResource):
    """Sessions, cache, limits, execution state and queues. Leave `redis_url` unset to use REDIS_URL or the
    local stack, and `max_connections` unset to use REDIS_MAX_CONNECTIONS."""

    redis_url: str | None = Field(None, description="redis:// or rediss:// URL; set through dg.EnvVar('REDIS_URL').")
    max_connections: int | None = Field(None, description="Upper bound of the connection pool "
                                                          "(default REDIS_MAX_CONNECTIONS).")
    socket_timeout: float = Field(5.0, description="Seconds before a command or connect times out.")
    retries: int = Field(3, description="Retries, with exponential backoff, of a command on a transient error.")

    _client: redis.Redis | None = PrivateAttr(None)

    def url(self) -> str:
        return self.redis_url or connections.resolve_url("redis", self.settings)

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = connections.redis_client(self.settings, self.url(), max_connections=self.max_connections,
                                                    socket_timeout=self.socket_timeout, retries=self.retries)
        return self._client

    def health(self) -> ServiceHealth:
        return self._health("redis", lambda: self.client, client.check_health)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client.connection_pool.disconnect()
            self._client = None
