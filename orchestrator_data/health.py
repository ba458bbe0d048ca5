"""What a health check reports, the same shape for every service."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

# The versions the product needs (docs/architecture.md: PostgreSQL >= 16, Redis >= 7, Elasticsearch 8.x,
# or 9.x through REST compatibility).
MINIMUM_MAJOR = {"postgres": 16, "redis": 7, "elasticsearch": 8}
MAXIMUM_MAJOR = {"elasticsearch": 9}


@dataclass
class ServiceHealth:
    service: str
    ok: bool
    version: str | None = None
    latency_ms: float | None = None
    error: str | None = None
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def compatibility_version(self) -> str | None:
        """The version the product's support range is judged by: Redis's protocol version for a
        Valkey server (whose own version is shown), the server's version otherwise."""
        return self.detail.get("protocol_version") or self.version


def major_version(version: str | None) -> int | None:
    if not version:
        return None
    head = version.strip().split(".")[0].split()[0]
    return int(head) if head.isdigit() else None


def version_problem(service: str, version: str | None) -> str | None:
    """Why `version` does not fit the product, or None when it does."""
    major = major_version(version)
    if major is None:
        return f"could not read the server version ({version!r})"
    low, high = MINIMUM_MAJOR[service], MAXIMUM_MAJOR.get(service)
    if major < low:
        return f"version {version} is older than the required {low}"
    if high is not None and major > high:
        return f"version {version} is newer than the supported {high}.x"
    return None


def median_latency_ms(round_trip, samples: int = 5) -> float:
    """Median of a few round trips, so one slow packet does not decide the figure."""
    timings = []
    for _ in range(samples):
        start = time.perf_counter()
        round_trip()
        timings.append((time.perf_counter() - start) * 1000.0)
    return round(statistics.median(timings), 3)


def failed(service: str, exc: BaseException) -> ServiceHealth:
    """A health record for an exception, naming its type and a message free of secrets."""
    from orchestrator_data.redaction import redact

    return ServiceHealth(service=service, ok=False, error=f"{type(exc).__name__}: {redact(str(exc))}")
