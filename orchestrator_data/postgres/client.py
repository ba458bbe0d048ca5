"""SQLAlchemy 2 engines on psycopg 3, with a deliberately sized pool and TLS options."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from orchestrator_data import urls
from orchestrator_data.health import ServiceHealth, failed, median_latency_ms, version_problem
from orchestrator_data.redaction import register_secret
from orchestrator_data.replication.follow import follow_primary, reporting_now
from orchestrator_data.replication.status import observe_or_why as observe_replication
from orchestrator_data.retry import transient_retrying


@dataclass(frozen=True)
class PoolOptions:
    size: int = 5
    max_overflow: int = 5
    timeout: float = 10.0
    recycle: int = 1800


@dataclass(frozen=True)
class TlsOptions:
    """libpq TLS parameters; any given here override the URL's own query parameters."""

    sslmode: str | None = None
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    channel_binding: str | None = None

    def connect_args(self) -> dict:
        return {k: v for k, v in vars(self).items() if v}


def create_engine(
    url: str | urls.ServiceUrl,
    pool: PoolOptions = PoolOptions(),
    tls: TlsOptions = TlsOptions(),
    application_name: str = "orchestrator-data",
    connect_timeout: int = 10,
    reconnect_timeout_s: float = 0.0,
) -> sa.Engine:
    """An engine on `url` (one host, or several: libpq's multi-host form). `reconnect_timeout_s`: how long
    opening a connection keeps retrying while no host takes a read-write session (a failover;
    replication/follow.py); 0 fails at once, as a health check wants."""
    parsed = urls.parse_postgres_url(url)
    register_secret(parsed.password)
    engine = sa.create_engine(
        urls.sqlalchemy_url(parsed),  # built from the parsed parts: SQLAlchemy never reads the text
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.timeout,
        pool_recycle=pool.recycle,
        pool_pre_ping=True,  # a server restart must not hand out dead connections
        connect_args={"application_name": application_name, "connect_timeout": connect_timeout,
                      **tls.connect_args()},
        hide_parameters=True,  # bound values never appear in error messages
    )
    return follow_primary(engine, reconnect_timeout_s)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc, sa_exc.OperationalError)
    return isinstance(exc, (ConnectionError, TimeoutError))


def connect(engine: sa.Engine, attempts: int = 4) -> sa.Connection:
    """A connection, retried with backoff while the server is restarting or briefly unreachable."""
    for attempt in transient_retrying(is_transient, attempts=attempts):
        with attempt:
            return engine.connect()
    raise AssertionError("unreachable")


def pool_figures(engine: sa.Engine) -> dict:
    pool = engine.pool
    figures: dict = {"pool_class": type(pool).__name__}
    if isinstance(pool, sa.QueuePool):
        figures.update(
            pool_size=pool.size(),
            pool_checked_in=pool.checkedin(),
            pool_checked_out=pool.checkedout(),
            # QueuePool counts overflow from -pool_size; report connections opened beyond the pool
            pool_overflow_in_use=max(0, pool.overflow()),
        )
    return figures


def check_health(engine: sa.Engine, attempts: int = 3) -> ServiceHealth:
    try:
        # a health check reports what it finds now: it never waits out a failover (replication/follow.py)
        with reporting_now(), connect(engine, attempts=attempts) as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            latency = median_latency_ms(lambda: conn.execute(sa.text("SELECT 1")).scalar_one())
            row = conn.execute(sa.text(
                "SELECT current_database(), current_user, pg_database_size(current_database()),"
                " (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),"
                " current_setting('max_connections')::int, current_setting('ssl') = 'on'"
            )).one()
            replication, unobserved = observe_replication(conn)
    except Exception as exc:  # noqa: BLE001 - a health check reports every failure
        return failed("postgres", exc)
    problem = version_problem("postgres", version)
    return ServiceHealth(
        service="postgres",
        ok=problem is None,
        version=version,
        latency_ms=latency,
        error=problem,
        detail={
            "database": row[0],
            "user": row[1],
            "database_bytes": row[2],
            "connections": row[3],
            "max_connections": row[4],
            "server_ssl": row[5],
            **pool_figures(engine),
            **(_replication_detail(replication) if replication else {"replication_error": unobserved}),
        },
    )


def _replication_detail(replication) -> dict:
    return {
        "role": replication.role,
        "timeline": replication.timeline,
        "server": replication.server,  # host:port that answered: with several hosts, which is the primary
        # standbys, slots and lag only when there is any: a lone primary's status stays short
        **({"replication": replication.as_dict()} if replication.has_replication else {}),
    }


# What the schema tools (migrator, catalog, security check) accept: an engine, an open connection,
# or a URL for which they make a small engine of their own and dispose of it afterwards.
Bind = sa.Engine | sa.Connection | str


@contextmanager
def engine_for(bind: sa.Engine | str, application_name: str = "orchestrator-data-migrate") -> Iterator[sa.Engine]:
    if isinstance(bind, sa.Engine):
        yield bind
        return
    engine = create_engine(str(bind), pool=PoolOptions(size=2, max_overflow=2), application_name=application_name)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def connection_for(bind: Bind) -> Iterator[sa.Connection]:
    """A connection for read-only checks; a given Connection is used as it is."""
    if isinstance(bind, sa.Connection):
        yield bind
        return
    with engine_for(bind) as engine, engine.connect() as conn:
        yield conn
