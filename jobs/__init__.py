"""Asset jobs and op jobs."""

import dagster as dg

# The whole bring-up of the data layer. It grows as capabilities land (schema, seed, indices).
bootstrap_job = dg.define_asset_job(
    "bootstrap_job",
    selection=dg.AssetSelection.groups("platform"),
    description="Bring the data layer up: check every server (grows into schema, seed and indices).",
)

health_job = dg.define_asset_job(
    "health_job",
    selection=dg.AssetSelection.assets("service_health"),
    description="Check PostgreSQL, Redis and Elasticsearch: versions, latency, pools.",
)

JOBS = [bootstrap_job, health_job]

__all__ = ["JOBS", "bootstrap_job", "health_job"]
