"""The one Definitions object of the orchestrator-data code location."""

import dagster as dg

from assets import ASSET_CHECKS, ASSETS
from jobs import JOBS
from runtime.executors import executor_for
from orchestrator_data.settings import load_settings
from resources import build_resources
from schedules import SCHEDULES, SENSORS

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=ASSET_CHECKS,
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources=build_resources(),
    # DAGSTER_EXECUTOR: multiprocess (one machine) or celery (workers; docs/deploy.md)
    executor=executor_for(load_settings()),
)
