"""PostgreSQL as a Dagster resource: one pooled SQLAlchemy engine (psycopg 3) per run."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import Field, PrivateAttr

from orchestrator_data import connections
from orchestrator_data.health import ServiceHealth
from orchestrator_data.postgres import client
from resources._base import SettingsResource


class PostgresResource(SettingsResource):
    """The application database. Leave `database_url` unset to use DATABASE_URL or the local stack, and
    the pool fields unset to use DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW and DATABASE_POOL_TIMEOUT."""

    database_url: str | None = Field(None, description="postgresql:// URL; set through dg.EnvVar('DATABASE_URL').")
    pool_size: int | None = Field(None, description="Connections kept open per run process (default DATABASE_POOL_SIZE).")
    max_overflow: int | None = Field(None, description="Extra connections beyond pool_size (default DATABASE_MAX_OVERFLOW).")
    pool_timeout: float | None = Field(None, description="Seconds to wait for a free pooled connection "
                                                         "(default DATABASE_POOL_TIMEOUT).")
    sslmode: str | None = Field(None, description="libpq sslmode, overriding the URL's (e.g. require, verify-full).")
    sslrootcert: str | None = Field(None, description="CA certificate file for verify-ca / verify-full.")
    channel_binding: str | None = Field(None, description="libpq channel_binding (Neon: require).")
    application_name: str = "orchestrator-data-dagster"
    retention_dir: str | None = Field(None, description="Directory whose <table>.json retention policies replace "
                                                        "the package's (default RETENTION_POLICY_DIR).")

    _engine: sa.Engine | None = PrivateAttr(None)

    def retention_directory(self) -> Path | None:
        return Path(self.retention_dir) if self.retention_dir else self.settings.retention_policy_dir

    def url(self) -> str:
        return self.database_url or connections.resolve_url("postgres", self.settings)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = connections.postgres_engine(
                self.settings, self.url(), pool_size=self.pool_size, max_overflow=self.max_overflow,
                pool_timeout=self.pool_timeout, application_name=self.application_name,
                tls=client.TlsOptions(sslmode=self.sslmode, sslrootcert=self.sslrootcert,
                                      channel_binding=self.channel_binding),
            )
        return self._engine

    def connect(self) -> sa.Connection:
        """A pooled connection, retried with backoff on transient errors."""
        return client.connect(self.engine)

    def health(self) -> ServiceHealth:
        return self._health("postgres", lambda: self.engine, client.check_health)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.dispose()

    def dispose(self) -> None:
        """Close the pool (a sensor tick is short: it keeps no idle connections between ticks)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
