"""Retention policies, kept as data like the search lifecycle policies.

`retention/policies/<table>.json` in the package, one per table; a file of the same name in
RETENTION_POLICY_DIR replaces the package's for that table. A policy has

    "table":        the table it is for (must match the file name)
    "delete_after": "90d" | null     how long a row is kept (units d, h, m, s, ms); null keeps rows forever
    "batch_size":   1..100000        rows per delete (one short transaction each); default 1000

What a row's age is measured from is fixed per table (TABLES): executions by created_at, audit rows
by occurred_at, workflows and marketplace items by deleted_at (only soft-deleted rows are purged).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator_data.errors import BadInput
from orchestrator_data.policy_files import policy_data, policy_texts
from orchestrator_data.units import parse_time


@dataclass(frozen=True)
class Target:
    age_column: str
    what: str  # which rows the policy purges, for `retention show`


# Purge order: soft-deleted parents first (their cascades write audit rows), the audit trail last.
TABLES: dict[str, Target] = {
    "workflows": Target("deleted_at", "soft-deleted workflows (with their versions and executions)"),
    "marketplace_items": Target("deleted_at", "soft-deleted marketplace items"),
    "executions": Target("created_at", "executions, by creation time"),
    "audit_logs": Target("occurred_at", "audit rows the search sync has consumed"),
}
POLICY_KEYS = {"table", "delete_after", "batch_size"}
DEFAULT_BATCH = 1000
MAX_BATCH = 100_000  # the audit purge function's own bound


class InvalidRetentionPolicy(BadInput):
    """A retention policy file that is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class RetentionPolicy:
    table: str
    source: str                  # the file it came from, for messages
    delete_after: str | None     # None keeps every row
    batch_size: int = DEFAULT_BATCH

    @property
    def delete_after_s(self) -> float | None:
        return parse_time(self.delete_after) if self.delete_after else None

    @property
    def target(self) -> Target:
        return TABLES[self.table]


def parse_policy(text: str, where: str, expected_table: str) -> RetentionPolicy:
    data = policy_data(text, where, InvalidRetentionPolicy, known=POLICY_KEYS, subject="table", names=TABLES,
                       expected=expected_table)
    table = data["table"]
    if "delete_after" not in data:
        raise InvalidRetentionPolicy(f"{where}: 'delete_after' is required (a time like 90d, or null to keep rows)")
    delete_after = data["delete_after"]
    if delete_after is not None:
        try:
            seconds = parse_time(delete_after)
        except ValueError as exc:
            raise InvalidRetentionPolicy(f"{where}: 'delete_after' must be {exc} or null (got {delete_after!r})") from None
        if seconds < 86400:  # the audit purge function refuses younger horizons; so do the others, alike
            raise InvalidRetentionPolicy(f"{where}: 'delete_after' must be at least 1d (got {delete_after!r})")
    batch_size = data.get("batch_size", DEFAULT_BATCH)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise InvalidRetentionPolicy(f"{where}: 'batch_size' must be a whole number from 1 to {MAX_BATCH} "
                                     f"(got {batch_size!r})")
    return RetentionPolicy(table, where, delete_after, batch_size)


def load_policies(directory: Path | None = None) -> dict[str, RetentionPolicy]:
    """Every table's policy, in purge order: the package's, each replaced by a file of the same name in
    `directory` (RETENTION_POLICY_DIR). A file there that names no table is refused, not ignored."""
    texts = policy_texts("orchestrator_data.retention", TABLES, directory, variable="RETENTION_POLICY_DIR",
                         kind="table", error=InvalidRetentionPolicy)
    return {table: parse_policy(text, where, table) for table, (text, where) in texts.items()}


def policies_of(settings) -> dict[str, RetentionPolicy]:
    return load_policies(settings.retention_policy_dir)
