"""Work done from the CLI, recorded in Dagster as the matching asset's materialization, with the same
metadata the asset would record — so an asset page never shows old numbers after someone worked from
a terminal. The CLI imports this only when it records (orchestrator_data itself never imports
Dagster); each command passes the asset names and their metadata, built by the assets' own functions.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

SOURCE_TAG = "orchestrator-data/source"


def record(home: Path, materializations: list[tuple[str, dict]], command: str, partition: str | None = None) -> int:
    """Report each (asset, metadata) as a runless materialization on the instance in `home` (the one
    `orchestrator-data ui` and `run` use). Returns how many were recorded; raises when the instance's
    storage cannot be reached (the caller says so and carries on)."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for asset, metadata in materializations:
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=asset, metadata=metadata, tags={SOURCE_TAG: "cli"}, partition=partition,
                description=f"recorded by `orchestrator-data {command}`"))
    return len(materializations)
