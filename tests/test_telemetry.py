"""Telemetry stores: SQLite (embedded) and a real InfluxDB 1.x through the v1 API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.domain import DeviceRef, Event, Family, Reading
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


PANEL = DeviceRef("s1", Family.FIRE_PANEL, "fp-1")


def panel_reading(ts: datetime = T0, **fields: Any) -> Reading:
    smoke = {"loop": 1, "address": 23, "zone": "B1-F3", "component_type": 40, "description": "3F corridor"}
    heat = {**smoke, "address": 24, "component_type": 30}
    return Reading(PANEL, ts, {}, events=(Event("point_fire", smoke), Event("point_fire", heat),
                                          Event("silence"), Event("reset", {"operator": "zhang", "note": 7})),
                   **fields)


def test_events_are_stored_each_on_its_own_and_replays_overwrite(store: TelemetryStore) -> None:
    """Two point events of one panel in the same millisecond are two stored events; the reading
    has no metrics (an event-only message); writing it again changes nothing."""
    assert store.write([panel_reading(seq=9)]) == 0  # metric values written
    store.write([panel_reading(seq=9)])
    events = store.events(PANEL, T0, T0 + timedelta(seconds=1))
    assert [(e.ts, e.code, e.index, e.seq) for e in events] == [
        (T0, "point_fire", 0, 9), (T0, "point_fire", 1, 9), (T0, "silence", 2, 9), (T0, "reset", 3, 9)]
    assert dict(events[0].attrs) == {"loop": 1, "address": 23, "zone": "B1-F3", "component_type": 40,
                                     "description": "3F corridor"}
    assert events[1].attrs["address"] == 24
    assert dict(events[2].attrs) == {}
    assert events[3].attrs["operator"] == "zhang"
    assert events[3].attrs["note"] in (7, "7")  # free attributes are text in InfluxDB
    assert store.events(PANEL, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)) == []


def test_influx_events_measurement_tags_and_fields(influx_db: str) -> None:
    store = InfluxV1Store(influx_db)
    store.write([panel_reading(historical=True)])
    series = store.influxql('SELECT "loop", "address", "zone", "index", "historical" FROM "events" '
                            "WHERE \"code\"='point_fire' GROUP BY \"site\", \"family\", \"device\"")
    assert series[0]["tags"] == {"site": "s1", "family": "fire_panel", "device": "fp-1"}
    assert [row[1:] for row in series[0]["values"]] == [[1, 23, "B1-F3", 0, True], [1, 24, "B1-F3", 1, True]]
    store.close()
