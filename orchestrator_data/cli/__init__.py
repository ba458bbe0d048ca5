"""The `orchestrator-data` command line: the same operations as the Dagster jobs, from a terminal."""
