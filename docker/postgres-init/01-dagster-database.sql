-- Dagster keeps its run, event and schedule storage in a database of its own.
CREATE DATABASE dagster OWNER orchestrator;
