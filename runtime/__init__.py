"""How runs execute, apart from what they run: the executor DAGSTER_EXECUTOR picks, the workers' Celery
app, and the launcher behind `orchestrator-data run`. jobs/ holds the job definitions only."""
