"""PostgreSQL as a Dagster resource: one pooled SQLAlchemy engine (psycopg 3) per run."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa
from pydantic import Field, PrivateAttr

from orchestrator_data.connections import ServiceNotConfigured, resolve_url
from orchestrator_data.health import ServiceHealth
from orchestrator_data.postgres import client
from orchestrator_data.settings import load_settings


class PostgresResource(dg.ConfigurableResource):
    """The application database. Leave `database_url` unset to use the local stack."""

    database_url: str | None = Field(None, description="postgresql:// URL; set through dg.EnvVar('DATABASE_URL').")
    pool_size: int = Field(5, description="Connections kept open per run process.")
    max_overflow: int = Field(5, description="Extra connections allowed beyond pool_size.")
    pool_timeout: float = Field(10.0, description="Seconds to wait for a free pooled connection.")
    sslmode: str | None = Field(None, description="libpq sslmode, overriding the URL's (e.g. require, verify-full).")
    sslrootcert: str | None = Field(None, description="CA certificate file for verify-ca / verify-full.")
    channel_binding: str | None = Field(None, description="libpq channel_binding (Neon: require).")
    application_name: str = "orchestrator-data-dagster"

    _engine: sa.Engine | None = PrivateAttr(None)

    def url(self) -> str:
        return self.database_url or resolve_url("postgres", load_settings())

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = client.create_engine(
                self.url(),
                pool=client.PoolOptions(size=self.pool_size, max_overflow=self.max_overflow, timeout=self.pool_timeout),
                tls=client.TlsOptions(sslmode=self.sslmode, sslrootcert=self.sslrootcert,
                                      channel_binding=self.channel_binding),
                application_name=self.application_name,
            )
        return self._engine

    def connect(self) -> sa.Connection:
        """A pooled connection, retried with backoff on transient errors."""
        return client.connect(self.engine)

    def health(self) -> ServiceHealth:
        try:
            target = self.engine
        except ServiceNotConfigured as exc:
            return ServiceHealth(service="postgres", ok=False, error=str(exc))
        return client.check_health(target)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
