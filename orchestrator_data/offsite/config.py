"""The object store's settings as one object: OFFSITE_ENDPOINT_URL, OFFSITE_BUCKET, OFFSITE_PREFIX,
OFFSITE_REGION, OFFSITE_ACCESS_KEY_ID, OFFSITE_SECRET_ACCESS_KEY, OFFSITE_PART_SIZE_MB. Copies off the
machine are on exactly when OFFSITE_BUCKET is set."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from orchestrator_data.offsite.errors import OffsiteRefused

MIB = 1 << 20


@dataclass(frozen=True)
class StoreConfig:
    bucket: str
    prefix: str = ""                       # "" or "name/" (always ends with a slash when set)
    endpoint_url: str | None = None        # None: AWS S3 itself
    region: str = "us-east-1"
    access_key_id: str | None = field(default=None, repr=False)  # None: boto3's own chain (AWS_* variables, an instance role)
    secret_access_key: SecretStr | None = field(default=None, repr=False)
    part_size: int = 64 * MIB              # files larger than this go up in parts of this size

    @property
    def where(self) -> str:
        """How messages name the store: endpoint and bucket/prefix, never a credential."""
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def key(self, relative: str) -> str:
        return self.prefix + relative


def normalized_prefix(prefix: str | None) -> str:
    prefix = (prefix or "").strip().strip("/")
    return f"{prefix}/" if prefix else ""


def from_settings(settings) -> StoreConfig | None:
    """The store the settings configure, or None when OFFSITE_BUCKET is unset (copies off the machine off)."""
    if not settings.offsite_bucket:
        return None
    return StoreConfig(bucket=settings.offsite_bucket, prefix=normalized_prefix(settings.offsite_prefix),
                       endpoint_url=settings.offsite_endpoint_url, region=settings.offsite_region,
                       access_key_id=settings.offsite_access_key_id,
                       secret_access_key=settings.offsite_secret_access_key,
                       part_size=settings.offsite_part_size_mb * MIB)


def required(settings) -> StoreConfig:
    """The configured store; OffsiteRefused (exit 2) naming OFFSITE_BUCKET when there is none."""
    config = from_settings(settings)
    if config is None:
        raise OffsiteRefused("copies off the machine are not configured: set OFFSITE_BUCKET (and "
                             "OFFSITE_ENDPOINT_URL, OFFSITE_ACCESS_KEY_ID, OFFSITE_SECRET_ACCESS_KEY for a store "
                             "other than AWS S3; docs/backups.md)")
    return config
