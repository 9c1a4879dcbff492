"""Opening the telemetry store the settings name: InfluxDB (v1-compatible API) or embedded SQLite."""

from __future__ import annotations

from core.settings import Settings
from storage.influx import InfluxV1Store
from storage.sqlite_telemetry import SqliteTelemetryStore
from storage.telemetry import TelemetryStore


def open_telemetry_store(settings: Settings) -> TelemetryStore:
    if settings.influx_url:
        token = settings.influx_token.get_secret_value() if settings.influx_token else None
        return InfluxV1Store(settings.influx_url, token=token)
    return SqliteTelemetryStore(settings.telemetry_sqlite_path)
