"""PostgreSQL: engines, health, and (to come) schema, migrations and seeding."""
