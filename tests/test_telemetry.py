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
from storage.telemetry import TelemetryStore, history_step

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


def test_history_is_downsampled_in_the_store(store: TelemetryStore) -> None:
    readings = series(3_600)  # one hour at 1 s: vibration 2.0, 2.1, … 361.9
    store.write(readings)
    other = DeviceRef("s1", Family.PUMP, "pump-2")
    store.write([Reading(other, T0, {"vibration_mm_s": 99.0})])
    buckets = store.history(PUMP, "vibration_mm_s", T0 + timedelta(minutes=5), T0 + timedelta(minutes=35),
                            timedelta(minutes=10))
    # Buckets are aligned to the epoch: the window's first and last buckets are partial.
    assert [b.start for b in buckets] == [T0 + timedelta(minutes=m) for m in (0, 10, 20, 30)]
    for bucket, (first, last) in zip(buckets, [(300, 600), (600, 1200), (1200, 1800), (1800, 2100)], strict=True):
        values = [2.0 + i / 10 for i in range(first, last)]
        assert bucket.count == len(values)
        assert (bucket.low, bucket.high) == (pytest.approx(min(values)), pytest.approx(max(values)))
        assert bucket.mean == pytest.approx(sum(values) / len(values))


def test_history_leaves_out_empty_buckets_and_aligns_them_to_the_epoch(store: TelemetryStore) -> None:
    store.write([Reading(PUMP, T0 + timedelta(seconds=s), {"vibration_mm_s": float(s)}) for s in (7, 8, 125)])
    buckets = store.history(PUMP, "vibration_mm_s", T0, T0 + timedelta(minutes=5), timedelta(minutes=1))
    assert [(b.start, b.count, b.mean) for b in buckets] == [
        (T0, 2, pytest.approx(7.5)), (T0 + timedelta(minutes=2), 1, pytest.approx(125.0))]


def test_history_step_gives_about_the_points_asked_for() -> None:
    assert history_step(T0, T0 + timedelta(days=30), 500) == timedelta(seconds=5184)
    assert history_step(T0, T0 + timedelta(seconds=10), 500) == timedelta(seconds=1)


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


def test_a_missing_influx_database_is_an_outage_not_bad_data(influxdb: Any, unique_id: str) -> None:
    """Readings must wait in the spool until the database exists, not be bisected into dead letters."""
    store = InfluxV1Store(f"{influxdb.base_url}/{unique_id}-missing")
    try:
        with pytest.raises(StoreUnavailable, match="404 \\(database or bucket not found\\)"):
            store.write(series(3))
    finally:
        store.close()
