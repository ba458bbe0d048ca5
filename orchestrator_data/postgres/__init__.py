"""PostgreSQL: engines and health, the schema (models, Alembic revisions), the migrator with its
security check, catalog inspection and roles, tenant scoping, and seeding."""
