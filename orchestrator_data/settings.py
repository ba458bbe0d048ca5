"""One typed settings object, read from the environment, then `.env.local`, then `.env`.

The original tool's flow (`cp .env.example .env.local`) keeps working: real environment variables
win over `.env.local`, which wins over `.env`. Any invalid value raises `SettingsError`, whose
message names the variable and what is wrong and never contains a secret; the CLI turns it into
exit code 2.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
import typing
from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator_data.errors import BadInput
from orchestrator_data import urls

ENV_FILES = (".env", ".env.local")  # later files win


class Environment(str, enum.Enum):
    DEVELOPMENT = "development"
    TESTING = "testing"
    PRODUCTION = "production"


class Executor(str, enum.Enum):
    """How a run's steps execute: in subprocesses of the run's own process (one machine), or as Celery
    tasks on `orchestrator-data worker start` processes (several machines)."""
    MULTIPROCESS = "multiprocess"
    CELERY = "celery"


class SettingsError(BadInput):
    """A configuration value or file that cannot be used. `variable` names the variable or the file;
    the message is safe to print."""

    subject = "configuration"

    def __init__(self, variable: str, problem: str):
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable} {problem}")


Port = Annotated[int, Field(ge=1, le=65535)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=ENV_FILES,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    environment: Environment = Field(
        Environment.DEVELOPMENT, validation_alias=AliasChoices("ENVIRONMENT", "ORCHESTRATOR_ENV")
    )

    # Service URLs. Unset means "use the local stack" (orchestrator-data stack start).
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    elasticsearch_url: str | None = Field(None, validation_alias="ELASTICSEARCH_URL")
    dagster_pg_url: str | None = Field(None, validation_alias="DAGSTER_PG_URL")

    elasticsearch_api_key: SecretStr | None = Field(None, validation_alias="ELASTICSEARCH_API_KEY")
    elasticsearch_username: str | None = Field(None, validation_alias="ELASTICSEARCH_USERNAME")
    elasticsearch_password: SecretStr | None = Field(None, validation_alias="ELASTICSEARCH_PASSWORD")
    elasticsearch_ca_cert: Path | None = Field(None, validation_alias="ELASTICSEARCH_CA_CERT")

    database_pool_size: int = Field(5, ge=1, le=200, validation_alias="DATABASE_POOL_SIZE")
    database_max_overflow: int = Field(5, ge=0, le=200, validation_alias="DATABASE_MAX_OVERFLOW")
    database_pool_timeout: float = Field(10.0, gt=0, le=600, validation_alias="DATABASE_POOL_TIMEOUT")
    redis_max_connections: int = Field(20, ge=1, le=10_000, validation_alias="REDIS_MAX_CONNECTIONS")

    backup_dir: Path = Field(Path("backups"), validation_alias="BACKUP_DIR")
    # base64 of 32 random bytes; set: backups are encrypted at rest (AES-256-GCM), unset: plain
    backup_encryption_key: SecretStr | None = Field(None, validation_alias="BACKUP_ENCRYPTION_KEY")
    # The newest *verified* backup may be this old before the freshness check and the stale-backup
    # sensor alert: a nightly backup plus two hours of slack.
    backup_max_age_hours: float = Field(26.0, gt=0, le=24 * 90, validation_alias="BACKUP_MAX_AGE_HOURS")
    # The newest backup whose *restore check* passed may be this old: restore tests run weekly, so a
    # week plus a day of slack. A separate promise from the nightly backup's.
    restore_check_max_age_days: float = Field(8.0, gt=0, le=366, validation_alias="RESTORE_CHECK_MAX_AGE_DAYS")
    # Alerts are also POSTed here when set; a SecretStr because webhook URLs often embed a token.
    alert_webhook_url: SecretStr | None = Field(None, validation_alias="ALERT_WEBHOOK_URL")
    # Search: the prefix of every index, alias and template name (several deployments or test runs
    # can share a cluster), and the shape of new indices (one shard, no replica on the local node).
    search_index_prefix: str = Field("od", pattern=r"^[a-z0-9][a-z0-9_]{0,39}$", validation_alias="SEARCH_INDEX_PREFIX")
    search_shards: int = Field(1, ge=1, le=64, validation_alias="SEARCH_SHARDS")
    search_replicas: int = Field(0, ge=0, le=8, validation_alias="SEARCH_REPLICAS")
    # Where alerts point for what to do: e.g. the runbook's URL in your repository host.
    runbook_url: str = Field("docs/runbook.md", min_length=1, validation_alias="RUNBOOK_URL")
    # Lifecycle policies (rollover, retention): a <index>.json here replaces the package's policy.
    search_lifecycle_dir: Path | None = Field(None, validation_alias="SEARCH_LIFECYCLE_DIR")
    # Retention policies (how long rows are kept before they are purged): a <table>.json here replaces
    # the package's policy for that table.
    retention_policy_dir: Path | None = Field(None, validation_alias="RETENTION_POLICY_DIR")
    # The Dagster web UI whose run pages `orchestrator-data run` links to (`orchestrator-data ui` serves
    # on 127.0.0.1:3000 unless told otherwise).
    dagster_webserver_url: str = Field("http://127.0.0.1:3000", validation_alias="DAGSTER_WEBSERVER_URL")
    # Snapshots: an `fs` repository (default `<prefix>-snapshots`) at a location the cluster resolves under
    # its path.repo (default: the prefix, a relative path; on a real cluster an absolute shared path).
    search_snapshot_repository: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$",
                                                   validation_alias="SEARCH_SNAPSHOT_REPOSITORY")
    search_snapshot_location: str | None = Field(None, min_length=1, max_length=4096,
                                                 validation_alias="SEARCH_SNAPSHOT_LOCATION")
    # The newest N successful snapshots are kept by `search snapshot prune` and the snapshot asset.
    search_snapshot_keep: int = Field(7, ge=1, le=1000, validation_alias="SEARCH_SNAPSHOT_KEEP")
    # Daily snapshots: a day plus two hours of slack before the freshness check and the sensor alert;
    # the newest snapshot whose restore check passed may be a week plus a day old.
    search_snapshot_max_age_hours: float = Field(26.0, gt=0, le=24 * 90,
                                                 validation_alias="SEARCH_SNAPSHOT_MAX_AGE_HOURS")
    search_restore_check_max_age_days: float = Field(8.0, gt=0, le=366,
                                                     validation_alias="SEARCH_RESTORE_CHECK_MAX_AGE_DAYS")
    # Where a run's steps execute (docs/deploy.md): multiprocess on the run's machine, or celery on
    # workers; their broker and result backend is the Redis server of REDIS_URL in a database of their
    # own (Celery's keys never mix with sessions and queues, and FLUSHDB of one never touches the other).
    dagster_executor: Executor = Field(Executor.MULTIPROCESS, validation_alias="DAGSTER_EXECUTOR")
    dagster_celery_redis_db: int = Field(1, ge=0, le=100_000, validation_alias="DAGSTER_CELERY_REDIS_DB")
    # A worker running a step may stay silent on the broker this long before the step is failed as lost
    # (a busy or far broker needs more; a killed worker is noticed after about this long).
    dagster_celery_worker_timeout_s: float = Field(15.0, ge=3, le=3600,
                                                   validation_alias="DAGSTER_CELERY_WORKER_TIMEOUT_S")
    # The first month of the search full load's monthly partitions (search_<index>_full_load; the first
    # partition also loads every older row). The first day of a month.
    search_partitions_start: date = Field(date(2024, 1, 1), validation_alias="SEARCH_PARTITIONS_START")
    # Where the local stack keeps its data, logs, ports and generated passwords.
    state_dir: Path = Field(Path(".orchestrator-data"), validation_alias="ORCHESTRATOR_DATA_HOME")

    # Ports of the local stack (only used by `stack start`).
    stack_postgres_port: Port = Field(55432, validation_alias="STACK_POSTGRES_PORT")
    stack_redis_port: Port = Field(56379, validation_alias="STACK_REDIS_PORT")
    stack_elasticsearch_port: Port = Field(59200, validation_alias="STACK_ELASTICSEARCH_PORT")
    stack_elasticsearch_heap: str = Field("512m", pattern=r"^\d+[mg]$", validation_alias="STACK_ELASTICSEARCH_HEAP")

    # Each URL is kept in its canonical text (urls.parse_url's reading, re-encoded), so any parser
    # that reads it later reads the same parts; an ambiguous one is refused here.
    @field_validator("database_url", "dagster_pg_url")
    @classmethod
    def _postgres(cls, value: str | None) -> str | None:
        return urls.validate_postgres_url(value) if value else None

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        return urls.validate_redis_url(value) if value else None

    @field_validator("elasticsearch_url")
    @classmethod
    def _elasticsearch(cls, value: str | None) -> str | None:
        return urls.validate_elasticsearch_url(value) if value else None

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().strip().lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("dagster_webserver_url")
    @classmethod
    def _webserver_url(cls, value: str) -> str:
        if not value.strip().lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.strip()
    @field_validator("search_snapshot_repository", "search_snapshot_location", mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        # `SEARCH_SNAPSHOT_LOCATION=` in an env file means "the default", as the URLs' blanks do
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("search_partitions_start")
    @classmethod
    def _first_of_a_month(cls, value: date) -> date:
        if value.day != 1:
            raise ValueError("must be the first day of a month (YYYY-MM-01)")
        return value

    @field_validator("state_dir")
    @classmethod
    def _state_dir(cls, value: Path) -> Path:
        # The nearest existing ancestor must be a directory, or every command would fail creating it.
        target = value.expanduser().absolute()
        for path in (target, *target.parents):
            if path.exists():
                if not path.is_dir():
                    raise ValueError("names a file, not a directory" if path == target
                                     else "is a path below a file, not a directory")
                break
        return value

    @field_validator("elasticsearch_ca_cert")
    @classmethod
    def _ca_cert(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("does not name a readable file")
        return value

    @field_validator("backup_encryption_key", mode="before")
    @classmethod
    def _backup_key(cls, value):
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        try:
            decoded = base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64 of 32 random bytes (e.g. `openssl rand -base64 32`)") from None
        if len(decoded) != 32:
            raise ValueError(f"must decode to 32 bytes, not {len(decoded)}")
        return raw.strip()

    @field_validator("dagster_executor", mode="before")
    @classmethod
    def _executor(cls, value):
        return _known(value, Executor, "executor")

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, value):
        return _known(value, Environment, "environment")

    @property
    def backup_key_bytes(self) -> bytes | None:
        key = self.backup_encryption_key
        return base64.b64decode(key.get_secret_value()) if key else None

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION


def _known(value, choices: type[enum.Enum], what: str):
    """A choice's text, trimmed and lower-cased, or a ValueError listing the choices."""
    if isinstance(value, str):
        value = value.strip().lower()
        names = [choice.value for choice in choices]
        if value not in names:
            raise ValueError(f"is not a known {what}; expected {', '.join(names[:-1])} or {names[-1]}")
    return value


# Settings that name a path, relative to the directory a command is run from.
# Every setting that is a local path (read relative to the directory a command runs in).
PATH_VARIABLES = {name: str(field.validation_alias) for name, field in Settings.model_fields.items()
                  if field.annotation is Path or Path in typing.get_args(field.annotation)}


def exported_environment(settings: Settings) -> dict[str, str]:
    """The environment under which a process started in another directory reads the same settings as
    this one: the values of this directory's .env files (the environment still winning), with every
    path setting made absolute against this directory."""
    from dotenv import dotenv_values

    environment: dict[str, str] = {}
    for name in ENV_FILES:
        if Path(name).is_file():
            environment.update({key: value for key, value in dotenv_values(name).items() if value is not None})
    environment.update(os.environ)
    for field, variable in PATH_VARIABLES.items():
        value = getattr(settings, field)
        # settings are case-insensitive: drop any other spelling so the absolute path is the one read
        environment = {key: item for key, item in environment.items() if key.upper() != variable}
        if value is not None:
            environment[variable] = str(Path(value).expanduser().absolute())
    return environment


def production_by_default() -> bool:
    """Whether ENVIRONMENT is production, for what is decided once when the Dagster code location loads
    (the default status of schedules and sensors), before any resource exists."""
    return load_settings().is_production


def _variable_of(settings_cls: type[BaseSettings], loc: tuple) -> str:
    if not loc:
        return "settings"
    field = settings_cls.model_fields.get(str(loc[0]))
    if field is None:
        return str(loc[0]).upper()
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return str(alias or loc[0]).upper()


def _check_env_files(files) -> None:
    """pydantic-settings would raise a bare UnicodeDecodeError (or OSError) from deep inside; name the file instead."""
    if files is None:
        return
    for name in [files] if isinstance(files, (str, Path)) else files:
        path = Path(name).expanduser()
        if not path.is_file():
            continue
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SettingsError(str(name), f"is not UTF-8 text (an invalid byte at offset {exc.start}); "
                                           "save it as UTF-8") from None
        except OSError as exc:
            raise SettingsError(str(name), f"cannot be read: {exc.strerror}") from None


def load_settings(**overrides) -> Settings:
    """Read settings, turning pydantic's errors into a SettingsError that names the variable."""
    _check_env_files(overrides.get("_env_file", ENV_FILES))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] not in {"value_error", "assertion_error"}:
            message = "is invalid: " + message[0].lower() + message[1:]
        raise SettingsError(_variable_of(Settings, first["loc"]), message) from None
