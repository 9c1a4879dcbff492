"""Telemetry stores: SQLite (embedded) and a real InfluxDB 1.x through the v1 API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.domain import DeviceRef, Family, Reading
from core.errors import StoreUnavailable
from storage.influx import InfluxV1Store
from storage.sqlite_telemetry import SqliteTelemetryStore
from storage.telemetry import TelemetryStore

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
PUMP = DeviceRef("s1", Family.PUMP, "pump-1")


@pytest.fixture(params=["sqlite", "influx"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TelemetryStore]:
    if request.param == "influx":
        opened: TelemetryStore = InfluxV1Store(request.getfixturevalue("influx_db"))
    else:
        opened = SqliteTelemetryStore(tmp_path / "telemetry.db")
    yield opened
    opened.close()


def series(n: int, start: datetime = T0) -> list[Reading]:
    return [
        Reading(PUMP, start + timedelta(seconds=i), {"vibration_mm_s": 2.0 + i / 10, "running": i % 2 == 0}, seq=i)
        for i in range(n)
    ]


def test_batch_round_trip(store: TelemetryStore) -> None:
    written = store.write(series(12_000))  # more than one InfluxDB batch of 5000 lines
    assert written == 24_000  # values, not readings
    points = store.query(PUMP, "vibration_mm_s", T0, T0 + timedelta(seconds=12_000))
    assert len(points) == 12_000
    assert points[0].ts == T0
    assert points[0].value == 2.0
    assert points[-1].value == pytest.approx(2.0 + 11_999 / 10)
    assert store.query(PUMP, "running", T0, T0 + timedelta(seconds=2))[0].value in (True, 1.0)


def test_rewriting_the_same_points_is_idempotent(store: TelemetryStore) -> None:
    store.write(series(10))
    store.write(series(10))
    assert len(store.query(PUMP, "vibration_mm_s", T0, T0 + timedelta(hours=1))) == 10


def test_query_window_is_half_open(store: TelemetryStore) -> None:
    store.write(series(10))
    points = store.query(PUMP, "vibration_mm_s", T0 + timedelta(seconds=2), T0 + timedelta(seconds=5))
    assert [p.ts for p in points] == [T0 + timedelta(seconds=s) for s in (2, 3, 4)]


def test_influx_line_protocol_escapes_and_types(influx_db: str) -> None:
    store = InfluxV1Store(influx_db)
    meter = DeviceRef("s1", Family.METER, "m-1")
    store.write([Reading(meter, T0, {"valve": "closed", "energy_kwh": 12}, seq=5, historical=True)])
    rows = store.influxql('SELECT "valve", "energy_kwh", "seq", "historical" FROM "meter"')[0]["values"]
    assert rows == [["2026-11-21T08:00:00Z", "closed", 12.0, 5, True]]
    store.close()


def test_influx_outage_is_store_unavailable() -> None:
    store = InfluxV1Store("http://127.0.0.1:9/nowhere", timeout=1)
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store.write(series(1))
