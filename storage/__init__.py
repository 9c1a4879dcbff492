"""Telemetry stores (InfluxDB, SQLite) and the state database (SQLAlchemy + Alembic)."""
