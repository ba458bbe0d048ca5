"""Refusals read in the Dagster UI: the core's messages name the CLI's flags ("pass --confirm"); a
person in the launchpad has run config instead. One place turns the one wording into the other, so
every asset and op says "set config confirm: true in the launchpad" and the CLI keeps its own."""

from __future__ import annotations

import re

import dagster as dg

# "(--confirm, or confirm: true)": the core naming both ways; the UI needs only its own
_BOTH = re.compile(r"\(--([a-z][\w-]*), or [\w]+: true\)")
# "pass --confirm": what to do
_PASS = re.compile(r"\bpass --([a-z][\w-]*)")
# "without --confirm": what it takes
_WITHOUT = re.compile(r"\bwithout --([a-z][\w-]*)")
# any other "--confirm" ("without --confirm"): the run config field it stands for
_FLAG = re.compile(r"(?<![\w-])--([a-z][\w-]*)")


def set_config(field: str, value: str = "true") -> str:
    """What a launchpad user does: 'set config confirm: true in the launchpad'."""
    return f"set config {field}: {value} in the launchpad"


def launchpad_wording(message: str) -> str:
    """`message` with each CLI flag it names turned into the run config a launchpad user sets."""
    message = _BOTH.sub(lambda m: f"({set_config(_field(m))})", message)
    message = _PASS.sub(lambda m: set_config(_field(m)), message)
    message = _WITHOUT.sub(lambda m: f"unless you {set_config(_field(m))}", message)
    return _FLAG.sub(lambda m: f"config {_field(m)}: true", message)


def _field(match: re.Match) -> str:
    return match.group(1).replace("-", "_")


def refused(error: Exception | str) -> dg.Failure:
    """A refusal as the one line a step failure shows, in the launchpad's terms."""
    return dg.Failure(description=launchpad_wording(str(error)))
