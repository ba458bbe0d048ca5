"""orchestrator-data: the database layer of the Robust AI Orchestrator.

This package is the domain core. It never imports Dagster: `resources`, `assets`, `jobs` and
`schedules` wrap it, and the CLI runs the same code.
"""

__version__ = "0.1.0"
