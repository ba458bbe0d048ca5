"""Progress of long work, by step, for whoever shows it (the CLI's live lines; nothing by default).

A report is `(step, done, total, unit)`: the step's name, how much of it is done, its total when
known (None: a count without an end, e.g. bytes a dump has written so far) and the unit ("rows",
"bytes", "tables"). Reports for one step only grow; a step is finished when done == total.
"""

from __future__ import annotations

from collections.abc import Callable

Report = Callable[[str, float, float | None, str], None]


def quiet(step: str, done: float, total: float | None, unit: str) -> None:
    """The default: nobody is watching."""
