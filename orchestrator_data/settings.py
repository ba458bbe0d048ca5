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
        Environment.DEVELOPMENT, validation_alias=AliasChoices("ENVIRONMENT", "ORCHESTRATOR_ENV"),
        description="`development`, `testing` or `production`. Production refuses seeding and `reset`, wants "
                    "`--confirm` for a rollback or a purge, and runs the schedules and sensors by default.",
    )

    # Service URLs. Unset means "use the local stack" (orchestrator-data stack start).
    database_url: str | None = Field(
        None, validation_alias="DATABASE_URL",
        description="PostgreSQL ≥ 16 holding the product's data: `postgresql://user:password@host:5432/db` "
                    "(`postgres://` too). Neon's URL works as given, `?sslmode=require&channel_binding=require` "
                    "included. Unset: the local stack's.")
    redis_url: str | None = Field(
        None, validation_alias="REDIS_URL",
        description="Redis ≥ 7: `redis://:password@host:6379/0`, or `rediss://` for TLS. Unset: the local stack's.")
    elasticsearch_url: str | None = Field(
        None, validation_alias="ELASTICSEARCH_URL",
        description="Elasticsearch 8.x (9.x through REST compatibility): `http(s)://host:9200` (no port: 80 or 443; "
                    "no query string). Unset: the local stack's.")
    dagster_pg_url: str | None = Field(
        None, validation_alias="DAGSTER_PG_URL",
        description="PostgreSQL database of Dagster's own run, event and schedule storage (a database of its own; "
                    "any `postgresql://` form, rewritten for psycopg2). Unset: the local stack's `dagster` database, "
                    "which only exists while DATABASE_URL is unset.")

    # read-only work (exports, metrics, full loads) may go to a standby; everything that writes uses DATABASE_URL
    database_read_url: str | None = Field(
        None, validation_alias="DATABASE_READ_URL",
        description="PostgreSQL for read-only work (GDPR exports, system metrics, the search sync's full loads): "
                    "a standby, or a multi-host URL with `target_session_attrs=prefer-standby`. Unset: DATABASE_URL. "
                    "docs/recovery.md#replication-and-failover.")

    elasticsearch_api_key: SecretStr | None = Field(
        None, validation_alias="ELASTICSEARCH_API_KEY",
        description="API key for Elasticsearch. Unset, with no username either: a `user:password@` in "
                    "ELASTICSEARCH_URL is used, else none.")
    elasticsearch_username: str | None = Field(
        None, validation_alias="ELASTICSEARCH_USERNAME",
        description="Basic-auth user for Elasticsearch (with ELASTICSEARCH_PASSWORD).")
    elasticsearch_password: SecretStr | None = Field(
        None, validation_alias="ELASTICSEARCH_PASSWORD", description="Basic-auth password for Elasticsearch.")
    elasticsearch_ca_cert: Path | None = Field(
        None, validation_alias="ELASTICSEARCH_CA_CERT",
        description="CA certificate file for an https:// ELASTICSEARCH_URL. Unset: the system's CAs.")

    database_pool_size: int = Field(5, ge=1, le=200, validation_alias="DATABASE_POOL_SIZE",
                                    description="Connections each process keeps in its PostgreSQL pool (the CLI "
                                                "and every Dagster run alike).")
    database_max_overflow: int = Field(5, ge=0, le=200, validation_alias="DATABASE_MAX_OVERFLOW",
                                       description="Connections a pool may open beyond DATABASE_POOL_SIZE "
                                                   "under load.")
    database_pool_timeout: float = Field(10.0, gt=0, le=600, validation_alias="DATABASE_POOL_TIMEOUT",
                                         description="Seconds to wait for a free pooled connection before "
                                                     "failing.")
    redis_max_connections: int = Field(20, ge=1, le=10_000, validation_alias="REDIS_MAX_CONNECTIONS",
                                       description="Upper bound of each process's Redis connection pool.")

    # a failover takes seconds (Patroni: about 10-30 s); clients keep trying that long, then fail with one line
    database_reconnect_timeout_s: float | None = Field(
        None, ge=0, le=600, validation_alias="DATABASE_RECONNECT_TIMEOUT_S",
        description="Seconds a process keeps reconnecting (backoff, then fail) while no PostgreSQL host takes a "
                    "read-write session, as during a failover; work cut off is run again only when it is safe to "
                    "repeat. Unset: 30 when DATABASE_URL lists several hosts or sets target_session_attrs (a "
                    "replicated setup), else 0 (a single server that is down fails at once). 0: never wait.")
    replication_lag_target_seconds: float = Field(
        30.0, gt=0, le=86_400, validation_alias="REPLICATION_LAG_TARGET_SECONDS",
        description="How far (replay lag, seconds) a standby may be behind its primary before the replication "
                    "asset's lag check fails and replication_sensor alerts.")
    replication_lag_target_bytes: int = Field(
        64 << 20, ge=1 << 16, validation_alias="REPLICATION_LAG_TARGET_BYTES",
        description="How much WAL (bytes not yet replayed) a standby may be behind its primary before the lag "
                    "check fails and replication_sensor alerts.")

    backup_dir: Path = Field(Path("backups"), validation_alias="BACKUP_DIR",
                             description="Directory backups are written to and read from (docs/backups.md).")
    backup_encryption_key: SecretStr | None = Field(
        None, validation_alias="BACKUP_ENCRYPTION_KEY",
        description="Base64 of 32 random bytes (`openssl rand -base64 32`): new backups are encrypted at rest "
                    "(AES-256-GCM). Keep it outside the backup storage. A member of the key ring (BACKUP_KEYRING_FILE), "
                    "current while the ring file holds no key. Unset, with no ring: backups are not encrypted.")
    backup_keyring_file: Path | None = Field(
        None, validation_alias="BACKUP_KEYRING_FILE",
        description="The backup key ring (docs/backups.md#keys): a 0600 JSON file outside BACKUP_DIR that "
                    "`backup keys rotate` creates and adds to; new backups use its newest key, every key in it "
                    "(and BACKUP_ENCRYPTION_KEY) still decrypts. Unset: BACKUP_ENCRYPTION_KEY is the only key.")
    backup_keep_last: int = Field(
        7, ge=0, le=10_000, validation_alias="BACKUP_KEEP_LAST",
        description="The newest N logical dumps are kept whatever their age (`backup prune`, "
                    "postgres_backup_prune_job).")
    gdpr_ledger_file: Path | None = Field(
        None, validation_alias="GDPR_LEDGER_FILE",
        description="The GDPR erasure ledger kept outside the database (append-only JSON lines: user id, "
                    "organization, time, request id), re-applied after a restore (docs/gdpr.md). Unset: "
                    "`gdpr-ledger.jsonl` in BACKUP_DIR.")
    recovery_dir: Path | None = Field(
        None, validation_alias="RECOVERY_DIR",
        description="Directory of the physical backup chain: `wal/` (the WAL archive), `base/<id>/` (base backups), "
                    "`restore_points.jsonl` (docs/recovery.md). Unset: BACKUP_DIR/recovery.")
    wal_archive_mode: str = Field(
        "off", pattern=r"^(off|async|sync)$", validation_alias="WAL_ARCHIVE_MODE",
        description="`off`, `async` (the archiver streams WAL beside the server) or `sync` (every commit waits until "
                    "its WAL is in the archive; commits block while the archiver is down). docs/recovery.md.")
    wal_archive_slot: str = Field(
        "orchestrator_archiver", pattern=r"^[a-z0-9_]{1,63}$", validation_alias="WAL_ARCHIVE_SLOT",
        description="Replication slot (and application_name) of the WAL archiver.")
    rpo_target_seconds: float = Field(
        60.0, gt=0, le=86_400, validation_alias="RPO_TARGET_SECONDS",
        description="How far behind the server the WAL archive may be (seconds of commits that could be lost) "
                    "before its check fails.")
    wal_slot_alert_bytes: int = Field(
        1 << 30, ge=1 << 20, validation_alias="WAL_SLOT_ALERT_BYTES",
        description="WAL held by the archiver's slot (bytes) above which it alerts; keep it well below the "
                    "server's max_slot_wal_keep_size.")
    recovery_window_days: float = Field(
        7.0, gt=0, le=3660, validation_alias="RECOVERY_WINDOW_DAYS",
        description="The recovery window: any moment of the last N days can be restored. `recovery prune` keeps "
                    "the base backups and WAL that needs; logical dumps older than it are pruned unless a keep rule "
                    "(BACKUP_KEEP_LAST, the newest verified) still needs them.")
    recovery_keep_base_backups: int = Field(
        2, ge=1, le=1000, validation_alias="RECOVERY_KEEP_BASE_BACKUPS",
        description="Base backups `recovery prune` always keeps (the newest), whatever their age.")
    # copies off the machine (docs/backups.md, "Copies off the machine"): on when OFFSITE_BUCKET is set
    offsite_bucket: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", validation_alias="OFFSITE_BUCKET",
        description="S3 bucket the dumps, base backups and WAL archive are copied to (verified by checksum), and "
                    "restored from with `--from-offsite`. Unset: nothing leaves the machine.")
    offsite_endpoint_url: str | None = Field(
        None, validation_alias="OFFSITE_ENDPOINT_URL",
        description="Endpoint of an S3-compatible store (`http(s)://host:port`, no credentials in it), e.g. MinIO. "
                    "Unset: AWS S3 of OFFSITE_REGION.")
    offsite_prefix: str = Field(
        "orchestrator-data", max_length=512, pattern=r"^[A-Za-z0-9._/-]*$", validation_alias="OFFSITE_PREFIX",
        description="Key prefix of every copy in the bucket (`dumps/`, `base/`, `wal/` below it); empty: the "
                    "bucket's root.")
    offsite_region: str = Field(
        "us-east-1", pattern=r"^[a-z0-9-]{1,40}$", validation_alias="OFFSITE_REGION",
        description="Region the requests are signed for (SigV4).")
    offsite_access_key_id: str | None = Field(
        None, validation_alias="OFFSITE_ACCESS_KEY_ID",
        description="Access key id of the store. Unset: boto3's own chain (AWS_ACCESS_KEY_ID, an instance role).")
    offsite_secret_access_key: SecretStr | None = Field(
        None, validation_alias="OFFSITE_SECRET_ACCESS_KEY",
        description="Secret access key of the store; never printed, logged or recorded.")
    offsite_part_size_mb: int = Field(
        64, ge=5, le=5120, validation_alias="OFFSITE_PART_SIZE_MB",
        description="Files larger than this many MiB are uploaded in parts of this size (multipart), each part "
                    "checksummed by the store.")
    offsite_max_lag_hours: float = Field(
        26.0, gt=0, le=24 * 90, validation_alias="OFFSITE_MAX_LAG_HOURS",
        description="How old the newest copy off the machine may be before the offsite_copies freshness check "
                    "fails.")
    base_backup_chain_share: float = Field(
        0.5, gt=0, le=10, validation_alias="BASE_BACKUP_CHAIN_SHARE",
        description="The nightly base backup is a full one (not incremental) once the incrementals since the newest "
                    "full add up to this share of its size: a restore unpacks every piece of its chain "
                    "(docs/recovery.md, \"Full or incremental\"). A full one is also taken at least weekly.")
    # a nightly backup plus two hours of slack
    backup_max_age_hours: float = Field(
        26.0, gt=0, le=24 * 90, validation_alias="BACKUP_MAX_AGE_HOURS",
        description="How old the newest verified backup may be before its freshness check fails and "
                    "stale_backup_sensor alerts.")
    # restore checks run weekly: a week plus a day of slack; a separate promise from the nightly backup's
    restore_check_max_age_days: float = Field(
        8.0, gt=0, le=366, validation_alias="RESTORE_CHECK_MAX_AGE_DAYS",
        description="How old the newest restore-checked backup may be before its freshness check fails and "
                    "stale_backup_sensor alerts.")
    # a SecretStr because webhook URLs often embed a token
    alert_webhook_url: SecretStr | None = Field(
        None, validation_alias="ALERT_WEBHOOK_URL",
        description="Alerts are also POSTed here as JSON (docs/alerts.md); treated as a secret. Unset: alerts go "
                    "to the audit log and Redis pub/sub only.")
    # several deployments or test runs can share a cluster
    search_index_prefix: str = Field(
        "od", pattern=r"^[a-z0-9][a-z0-9_]{0,39}$", validation_alias="SEARCH_INDEX_PREFIX",
        description="Prefix of every search index, alias and template name.")
    search_shards: int = Field(1, ge=1, le=64, validation_alias="SEARCH_SHARDS",
                               description="Primary shards of each new search index.")
    search_replicas: int = Field(0, ge=0, le=8, validation_alias="SEARCH_REPLICAS",
                                 description="Replicas of each new search index (0 on a single node).")
    runbook_url: str = Field(
        "docs/runbook.md", min_length=1, validation_alias="RUNBOOK_URL",
        description="Base of the runbook links that alerts and check descriptions carry, e.g. docs/runbook.md "
                    "on your Git host.")
    search_lifecycle_dir: Path | None = Field(
        None, validation_alias="SEARCH_LIFECYCLE_DIR",
        description="Directory of `<index>.json` lifecycle policies (rollover, retention) that replace the "
                    "package's (docs/search.md). Unset: the package's policies.")
    retention_policy_dir: Path | None = Field(
        None, validation_alias="RETENTION_POLICY_DIR",
        description="Directory of `<table>.json` retention policies that replace the package's "
                    "(docs/retention.md). Unset: the package's policies.")
    dagster_webserver_url: str = Field(
        "http://127.0.0.1:3000", validation_alias="DAGSTER_WEBSERVER_URL",
        description="The Dagster UI that `orchestrator-data run` links each run's page to.")
    search_snapshot_repository: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$", validation_alias="SEARCH_SNAPSHOT_REPOSITORY",
        description="Name of the `fs` snapshot repository of the search indices. Unset: `<prefix>-snapshots`.")
    search_snapshot_location: str | None = Field(
        None, min_length=1, max_length=4096, validation_alias="SEARCH_SNAPSHOT_LOCATION",
        description="The repository's location: relative (resolved under the nodes' `path.repo`) or, on a real "
                    "cluster, an absolute shared path listed in `path.repo`. Unset: the prefix.")
    search_snapshot_keep: int = Field(
        7, ge=1, le=1000, validation_alias="SEARCH_SNAPSHOT_KEEP",
        description="Successful snapshots kept by `search snapshot prune` and the search_snapshot asset.")
    # daily snapshots: a day plus two hours of slack; their restore checks: a week plus a day
    search_snapshot_max_age_hours: float = Field(
        26.0, gt=0, le=24 * 90, validation_alias="SEARCH_SNAPSHOT_MAX_AGE_HOURS",
        description="How old the newest successful search snapshot may be before its freshness check fails "
                    "and stale_search_snapshot_sensor alerts.")
    search_restore_check_max_age_days: float = Field(
        8.0, gt=0, le=366, validation_alias="SEARCH_RESTORE_CHECK_MAX_AGE_DAYS",
        description="How old the newest restore-checked search snapshot may be before its freshness check "
                    "fails and stale_search_snapshot_sensor alerts.")
    # Celery's broker and results live in a Redis database of their own: its keys never mix with sessions
    # and queues, and FLUSHDB of one never touches the other
    dagster_executor: Executor = Field(
        Executor.MULTIPROCESS, validation_alias="DAGSTER_EXECUTOR",
        description="Where a run's steps execute: `multiprocess` (beside the run, one machine) or `celery` (on "
                    "`orchestrator-data worker start` processes; docs/deploy.md).")
    dagster_celery_redis_db: int = Field(
        1, ge=0, le=100_000, validation_alias="DAGSTER_CELERY_REDIS_DB",
        description="Redis database, on REDIS_URL's server, of Celery's broker and results; must differ from "
                    "REDIS_URL's own.")
    # a busy or far broker needs more; a killed worker is noticed after about this long
    dagster_celery_worker_timeout_s: float = Field(
        15.0, ge=3, le=3600, validation_alias="DAGSTER_CELERY_WORKER_TIMEOUT_S",
        description="Seconds a Celery worker running a step may stay silent on the broker before the step is "
                    "failed as lost.")
    search_partitions_start: date = Field(
        date(2024, 1, 1), validation_alias="SEARCH_PARTITIONS_START",
        description="First month (`YYYY-MM-01`) of the search full load's monthly partitions "
                    "(search_full_load_job); the first partition also loads every older row.")
    state_dir: Path = Field(
        Path(".orchestrator-data"), validation_alias="ORCHESTRATOR_DATA_HOME",
        description="State directory of the local stack: its data, logs, ports, generated passwords and "
                    "Dagster home.")

    # Ports of the local stack (only used by `stack start`).
    stack_postgres_port: Port = Field(55432, validation_alias="STACK_POSTGRES_PORT",
                                      description="Port of the local stack's PostgreSQL.")
    stack_redis_port: Port = Field(56379, validation_alias="STACK_REDIS_PORT",
                                   description="Port of the local stack's Redis.")
    stack_elasticsearch_port: Port = Field(59200, validation_alias="STACK_ELASTICSEARCH_PORT",
                                           description="HTTP port of the local stack's Elasticsearch node.")
    stack_elasticsearch_heap: str = Field("512m", pattern=r"^\d+[mg]$", validation_alias="STACK_ELASTICSEARCH_HEAP",
                                          description="Java heap of the local Elasticsearch node (`512m`, `1g`).")
    # The local HA pair (`stack start --standby`): etcd and Patroni members (docs/failover.md).
    postgres_standbys: int = Field(
        0, ge=0, le=3, validation_alias="POSTGRES_STANDBYS",
        description="Streaming standbys of the local stack's PostgreSQL. 0 runs the single server; 1 or more runs "
                    "the server under Patroni (with a local etcd) with that many standbys, failed over to "
                    "automatically (`stack start --standby` is 1). docs/failover.md.")
    replication_mode: str = Field(
        "sync", pattern=r"^(async|sync|strict)$", validation_alias="REPLICATION_MODE",
        description="How the HA pair's standbys replicate: `sync` (a commit is acknowledged once a standby has it; "
                    "only that standby may be promoted, so no acknowledged commit is lost; without a healthy "
                    "standby the primary goes on alone), `strict` (as sync, but without a standby commits wait) or "
                    "`async` (commits do not wait; a failover may lose the last ones, at most 1 MB behind).")
    stack_patroni_port: Port = Field(58008, validation_alias="STACK_PATRONI_PORT",
                                     description="REST API port of the HA pair's first Patroni member (member i: +i).")
    stack_etcd_port: Port = Field(52379, validation_alias="STACK_ETCD_PORT",
                                  description="Client port of the HA pair's etcd (its peer port is the next one).")
    # the tests set `-XX:TieredStopAtLevel=1`: their nodes live minutes, and the JIT's optimizing tier is
    # then most of a node's CPU (about half of what the search tests cost on 2 cores)
    stack_elasticsearch_java_opts: str = Field(
        "", validation_alias="STACK_ELASTICSEARCH_JAVA_OPTS",
        description="Extra JVM options of the local Elasticsearch node, space-separated (the heap is "
                    "STACK_ELASTICSEARCH_HEAP). `-XX:TieredStopAtLevel=1` starts it in about half the CPU and keeps "
                    "short sessions light (the tests use it); leave it empty for long, heavy indexing.")

    # Each URL is kept in its canonical text (urls.parse_url's reading, re-encoded), so any parser
    # that reads it later reads the same parts; an ambiguous one is refused here.
    @field_validator("database_url", "dagster_pg_url", "database_read_url")
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

    @field_validator("offsite_endpoint_url")
    @classmethod
    def _offsite_endpoint(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            # the secret belongs in OFFSITE_SECRET_ACCESS_KEY, which is never printed
            raise ValueError("must not carry credentials: set OFFSITE_ACCESS_KEY_ID and OFFSITE_SECRET_ACCESS_KEY")
        if parts.query or parts.fragment or parts.path.strip("/"):
            raise ValueError("must be a bare endpoint (scheme, host, port), without a path or query")
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("offsite_bucket", "offsite_access_key_id", "offsite_secret_access_key", mode="before")
    @classmethod
    def _offsite_blank_is_unset(cls, value):
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(raw, str) and not raw.strip() else value

    @field_validator("dagster_webserver_url")
    @classmethod
    def _webserver_url(cls, value: str) -> str:
        if not value.strip().lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.strip()
    @field_validator("search_snapshot_repository", "search_snapshot_location", "backup_keyring_file",
                     "gdpr_ledger_file", "recovery_dir", "database_reconnect_timeout_s", mode="before")
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

    @field_validator("stack_elasticsearch_java_opts", mode="before")
    @classmethod
    def _java_opts(cls, value):
        import shlex

        if value is None:
            return ""
        try:
            options = shlex.split(str(value))
        except ValueError as exc:
            raise ValueError(f"cannot be split into options ({exc})") from None
        for option in options:
            if not option.startswith("-"):
                raise ValueError(f"{option!r} is not a JVM option (each starts with '-')")
            if option.startswith(("-Xms", "-Xmx")):
                raise ValueError(f"{option!r}: the heap is STACK_ELASTICSEARCH_HEAP")
        return shlex.join(options)

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
    def gdpr_ledger_path(self) -> Path:
        return self.gdpr_ledger_file if self.gdpr_ledger_file is not None else self.backup_dir / "gdpr-ledger.jsonl"

    @property
    def recovery_root(self) -> Path:
        return self.recovery_dir if self.recovery_dir is not None else self.backup_dir / "recovery"

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
