"""Work done outside an asset's own step, recorded in Dagster as that asset's materialization with the
metadata the asset would record, and followed by the asset's checks, evaluated now — so an asset page
never shows old numbers, an old check result or "not evaluated" after someone worked from a terminal.

One registry, {asset key: metadata builder}, filled next to each builder in the asset modules
(`@builds(keys.POSTGRES_BACKUP)`). A builder takes the plain report the core returned and the live
resources (some figures are read from the servers: table sizes, index counts). The CLI passes
(asset key, report) pairs through `orchestrator_data/cli/recording.py`, its one bridge to Dagster;
reset_job yields its materializations through the same builders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from resources import (BackupStorageResource, DeploymentResource, ElasticsearchResource, PostgresResource,
                       RedisResource)

SOURCE_TAG = "orchestrator-data/source"  # on CLI-recorded materializations and CLI-started runs
CLI_SOURCE = "cli"

Builder = Callable[[object, "Live"], dict]
_BUILDERS: dict[str, Builder] = {}


@dataclass
class Live:
    """The resources a builder or a check may read, as an asset gets them (any may be unused)."""
    postgres: PostgresResource | None = None
    redis: RedisResource | None = None
    elasticsearch: ElasticsearchResource | None = None
    backup_storage: BackupStorageResource | None = None
    deployment: DeploymentResource | None = None


def builds(*asset_keys: str) -> Callable[[Builder], Builder]:
    """Register the decorated function as the metadata builder of `asset_keys`."""
    def register(builder: Builder) -> Builder:
        for key in asset_keys:
            known = _BUILDERS.get(key)
            # the same function again is a module loaded twice; another one is a mistake
            if known is not None and (known.__module__, known.__qualname__) != (builder.__module__, builder.__qualname__):
                raise ValueError(f"two metadata builders for {key}: {known.__qualname__}, {builder.__qualname__}")
            _BUILDERS[key] = builder
        return builder
    return register


def registered() -> set[str]:
    """The asset keys with a metadata builder."""
    return set(_BUILDERS)


def metadata(asset_key: str, report: object, live: Live) -> dict:
    """The metadata the asset `asset_key` records for `report`."""
    try:
        builder = _BUILDERS[asset_key]
    except KeyError:
        raise ValueError(f"no metadata builder for asset {asset_key!r}") from None
    return builder(report, live)


@dataclass
class CheckOutcome:
    asset: str
    name: str
    passed: bool | None  # None: the check could not run (error holds why)
    error: str | None = None


@dataclass
class Recorded:
    assets: list[str] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)


@contextmanager
def settings_resources() -> Iterator[Live]:
    """Every resource with its fields unset: each falls back to the settings (environment, .env.local,
    .env), exactly as the CLI reads them; the clients a builder or check opens are closed after."""
    with dg.build_resources({"postgres": PostgresResource(), "redis": RedisResource(),
                             "elasticsearch": ElasticsearchResource(), "backup_storage": BackupStorageResource(),
                             "deployment": DeploymentResource()}) as built:
        yield Live(postgres=built.postgres, redis=built.redis, elasticsearch=built.elasticsearch,
                   backup_storage=built.backup_storage, deployment=built.deployment)


def _checks_of(asset_keys: set[str]) -> list[dg.AssetChecksDefinition]:
    from assets import ASSET_CHECKS  # the package is loaded (this module is part of it); its list, not a copy

    return [check for check in ASSET_CHECKS
            if any(key.asset_key.to_user_string() in asset_keys for key in check.check_keys)]


def _evaluate(check: dg.AssetChecksDefinition, live: Live) -> tuple[dg.AssetCheckEvaluation | None, CheckOutcome]:
    [key] = check.check_keys
    [spec] = check.check_specs
    asset, name = key.asset_key.to_user_string(), key.name
    try:
        result = check(**{resource: getattr(live, resource) for resource in check.required_resource_keys
                          if resource != "io_manager"})
    except Exception as exc:  # noqa: BLE001 - a check that cannot run is reported, not recorded as failed
        message = str(getattr(exc, "description", None) or exc).strip().splitlines()
        return None, CheckOutcome(asset, name, None, message[0][:200] if message else type(exc).__name__)
    evaluation = dg.AssetCheckEvaluation(
        asset_key=key.asset_key, check_name=name, passed=result.passed, metadata=result.metadata,
        severity=result.severity, description=result.description, blocking=spec.blocking)
    return evaluation, CheckOutcome(asset, name, result.passed)


def record(home: Path, command: str, reports: list[tuple[str, object]], live: Live,
           partition: str | None = None) -> Recorded:
    """Report each (asset, report) as a runless materialization with its builder's metadata on the
    instance in `home` (the one `orchestrator-data ui` and `run` use), then each of those assets'
    checks, evaluated now against that materialization. Everything is built before anything is
    written; raises when the instance's storage cannot be reached (the caller says so and carries on)."""
    materializations = [
        dg.AssetMaterialization(asset_key=asset, metadata=metadata(asset, report, live), partition=partition,
                                tags={SOURCE_TAG: CLI_SOURCE}, description=f"recorded by `orchestrator-data {command}`")
        for asset, report in reports]
    recorded = Recorded(assets=[asset for asset, _ in reports])
    evaluations = []
    for check in _checks_of(set(recorded.assets)):
        evaluation, outcome = _evaluate(check, live)
        recorded.checks.append(outcome)
        if evaluation is not None:
            evaluations.append(evaluation)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for materialization in materializations:
            instance.report_runless_asset_event(materialization)
        # after the materializations: Dagster takes a runless evaluation recorded after a
        # materialization as an evaluation of that materialization
        for evaluation in evaluations:
            instance.report_runless_asset_event(evaluation)
    return recorded
