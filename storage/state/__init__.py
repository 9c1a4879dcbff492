"""The state database: alarms, audit log, users, dead letters (SQLAlchemy 2 + Alembic)."""
