"""Where docs/runbook.md says what an alert or a failing check means and what to do.

Each job, check and sensor has a section whose heading is its name, so its anchor is the name
(GitHub's rule: lower case, spaces to '-', punctuation other than '-' and '_' dropped). Alerts carry
the link (RUNBOOK_URL, default the repository path, is the base); check descriptions end with it.
"""

from __future__ import annotations

import re

PATH = "docs/runbook.md"


def anchor(heading: str) -> str:
    """The anchor a Markdown heading gets."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def link(section: str, base: str | None = None) -> str:
    return f"{base or PATH}#{anchor(section)}"


def described(description: str, section: str) -> str:
    """A check or sensor description ending with its runbook section."""
    return f"{description} Runbook: {link(section)}"
