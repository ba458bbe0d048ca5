"""What every command shares: the settings, the clients it needs, and the one mapping of errors to exit codes.

Nothing heavy is imported here at start (`--help` costs what typer costs): the settings, the drivers and
the search layout are imported when a command asks for them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from orchestrator_data.cli import output
from orchestrator_data.errors import DataLayerError, exit_code
from orchestrator_data.redaction import describe_error

if TYPE_CHECKING:
    from orchestrator_data.settings import Settings

# typer's own ways out: --help, a usage error, a command's chosen exit code, Ctrl-C's Abort
_TYPER_EXITS = (typer.Exit, typer.Abort, TyperException)
# which server a driver's exception comes from, by its package, so the one line names it
_SYSTEMS = {"sqlalchemy": "PostgreSQL", "psycopg": "PostgreSQL", "psycopg2": "PostgreSQL",
            "elasticsearch": "Elasticsearch", "elastic_transport": "Elasticsearch", "redis": "Redis"}


def describe_failure(exc: BaseException) -> str:
    """One redacted line for an exception that is not one of ours (a driver's, a bug), naming the
    server it came from when a driver raised it."""
    text = " ".join(describe_error(exc).split())
    system = _SYSTEMS.get(type(exc).__module__.split(".")[0])
    return f"{system}: {text}" if system else text


class ExitCodeGroup(TyperGroup):
    """The root command group, and the one place errors become exit codes: a DataLayerError prints
    its one line and exits 2 (BadInput) or 1 (OperationFailed); anything else prints one redacted
    line and exits 1 — never a traceback, which could show secrets held in local variables."""

    def invoke(self, ctx) -> Any:
        try:
            return super().invoke(ctx)
        except _TYPER_EXITS:
            raise
        except DataLayerError as exc:
            output.error(exc.one_line())
            raise typer.Exit(exit_code(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the contract: one line and exit 1, whatever failed
            output.error(describe_failure(exc))
            raise typer.Exit(1) from None


def load_settings() -> Settings:
    """The settings (a bad value raises SettingsError: exit 2 naming the variable)."""
    from orchestrator_data import settings

    return settings.load_settings()


def service_url(settings: Settings, service: str) -> str:
    """The URL of `service`; none configured and no local stack raises ServiceNotConfigured (exit 2,
    saying which variable to set or to start the stack)."""
    from orchestrator_data.connections import resolve_url

    return resolve_url(service, settings)


Wanted = bool | Literal["optional"]


@dataclass(frozen=True)
class Clients:
    """The clients a command asked for; None for one it did not ask for, or an optional one that is
    not configured."""

    settings: Settings
    postgres_url: str | None = None
    engine: Any = None      # sqlalchemy.Engine
    redis: Any = None       # redis.Redis
    es: Any = None          # elasticsearch.Elasticsearch
    layout: Any = None      # search.indices.Layout, whenever search was asked for


def _url(settings: Settings, service: str, wanted: Wanted) -> str | None:
    if not wanted:
        return None
    if wanted == "optional":
        from orchestrator_data.connections import ServiceNotConfigured

        with suppress(ServiceNotConfigured):
            return service_url(settings, service)
        return None
    return service_url(settings, service)


@contextmanager
def clients(settings: Settings, postgres: bool = True, redis: Wanted = False, search: Wanted = False,
            application_name: str = "orchestrator-data") -> Iterator[Clients]:
    """Open the clients a command needs and close every one of them afterwards. Every URL is resolved
    before any client is built, so a missing one (exit 2) leaves nothing open; an "optional" service
    that is not configured is None."""
    from orchestrator_data import connections

    urls = {"postgres": _url(settings, "postgres", postgres), "redis": _url(settings, "redis", redis),
            "elasticsearch": _url(settings, "elasticsearch", search)}
    with ExitStack() as closing:
        engine = redis_client = es = layout = None
        if urls["postgres"] is not None:
            engine = connections.postgres_engine(settings, urls["postgres"], application_name=application_name)
            closing.callback(engine.dispose)
        if urls["redis"] is not None:
            redis_client = connections.redis_client(settings, urls["redis"])
            closing.callback(_quietly, redis_client.close)
        if urls["elasticsearch"] is not None:
            es = connections.elasticsearch_client(settings, urls["elasticsearch"])
            closing.callback(_quietly, es.close)
        if search:
            from orchestrator_data.search.indices import layout_of

            layout = layout_of(settings)
        yield Clients(settings, urls["postgres"], engine, redis_client, es, layout)


def _quietly(close) -> None:
    with suppress(Exception):  # a client that cannot close cleanly must not hide the command's outcome
        close()
