"""The device list and telemetry history routes, on both telemetry stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.clock import FakeClock
from core.domain import DeviceRef, Event, Family, Reading
from ingest.inventory import load_inventory
from storage.influx import InfluxV1Store
from storage.sqlite_telemetry import SqliteTelemetryStore
from storage.state.database import StateDatabase
from storage.state.registry import RegistryStore
from storage.telemetry import TelemetryStore
from tests.harness.api import login, services_with_users

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PUMP = DeviceRef("north", Family.PUMP, "pump-1")
PANEL = DeviceRef("north", Family.FIRE_PANEL, "fp-1")
INVENTORY = """\
version: 1
sites:
  - id: north
    buildings: [{id: b1, zones: [{id: plant, kind: plant_room}]}]
    devices:
      - {id: pump-1, family: pump, building: b1, zone: plant, name_en: Supply pump 1}
      - {id: fp-1, family: fire_panel, building: b1}
"""


@pytest.fixture(params=["sqlite", "influx"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TelemetryStore]:
    opened: TelemetryStore
    if request.param == "influx":
        opened = InfluxV1Store(request.getfixturevalue("influx_db"))
    else:
        opened = SqliteTelemetryStore(tmp_path / "telemetry.db")
    yield opened
    opened.close()


@pytest.fixture
def client(store: TelemetryStore, tmp_path: Path) -> Iterator[TestClient]:
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    RegistryStore(db).apply(load_inventory(inventory), NOW)
    services = services_with_users(db, FakeClock(NOW))
    services.telemetry = store
    # 30 days at 1 minute: vibration rises linearly, with one spike the downsampling must keep.
    start = NOW - timedelta(days=30)
    store.write([Reading(PUMP, start + timedelta(minutes=i), {"vibration_mm_s": 2.0 + i / 10_000,
                                                              "running": True}) for i in range(30 * 1440)])
    store.write([Reading(PUMP, NOW - timedelta(days=1), {"vibration_mm_s": 45.0})])
    fire = Event("point_fire", {"loop": 1, "address": 23})
    store.write([Reading(PANEL, NOW - timedelta(hours=1), {}, events=(fire,))])
    with TestClient(create_app(services)) as test_client:
        yield test_client
    db.dispose()


def test_thirty_days_of_one_metric_come_back_as_about_500_buckets(client: TestClient) -> None:
    headers = login(client, "viewer")
    response = client.get("/api/v1/telemetry/north/pump/pump-1/vibration_mm_s", headers=headers,
                          params={"from": (NOW - timedelta(days=30)).isoformat(), "to": NOW.isoformat()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["unit"], body["step_s"]) == ("mm/s", 5184)
    buckets = body["buckets"]
    assert 495 <= len(buckets) <= 502
    assert sum(b["count"] for b in buckets) == 30 * 1440  # the spike overwrote one minute's value
    assert max(b["max"] for b in buckets) == 45.0
    assert buckets[0]["min"] == pytest.approx(2.0)
    assert all(b["min"] <= b["mean"] <= b["max"] for b in buckets)


def test_the_window_defaults_to_the_last_day(client: TestClient) -> None:
    body = client.get("/api/v1/telemetry/north/pump/pump-1/vibration_mm_s", headers=login(client, "viewer")).json()
    assert (body["from"], body["to"]) == ("2026-11-20T12:00:00Z", "2026-11-21T12:00:00Z")
    assert sum(b["count"] for b in body["buckets"]) == 1440


@pytest.mark.parametrize(("path", "params", "code", "says"), [
    ("/telemetry/north/pump/pump-1/no_such_metric", {}, 404, "no metric 'no_such_metric'"),
    ("/telemetry/north/pump/pump-1/running", {}, 422, "boolean metric"),
    ("/telemetry/north/boiler/pump-1/vibration_mm_s", {}, 422, "family"),
    ("/telemetry/north/pump/pump-1/vibration_mm_s", {"from": "2026-11-20T00:00:00"}, 422, "from"),
    ("/telemetry/north/pump/pump-1/vibration_mm_s", {"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"},
     422, "'from' must be before 'to'"),
    ("/telemetry/north/pump/pump-1/vibration_mm_s", {"from": "2024-01-01T00:00:00Z"}, 422, "400 days"),
    ("/telemetry/north/pump/pump-1/vibration_mm_s", {"points": 1}, 422, "points"),
    ("/telemetry/north/pump/bad id!/vibration_mm_s", {}, 422, "bad id!"),
])
def test_bad_history_requests_are_4xx_naming_what_was_wrong(client: TestClient, path: str,
                                                           params: dict[str, str], code: int, says: str) -> None:
    response = client.get(f"/api/v1{path}", params=params, headers=login(client, "viewer"))
    assert response.status_code == code, response.text
    assert says in response.text


def test_device_events_and_the_device_list(client: TestClient) -> None:
    headers = login(client, "viewer")
    events = client.get("/api/v1/telemetry/north/fire_panel/fp-1/events", headers=headers).json()
    assert [(e["code"], e["attrs"]["loop"], e["attrs"]["address"]) for e in events["items"]] == [("point_fire", 1, 23)]
    devices = client.get("/api/v1/devices", params={"site": "north", "family": "pump"}, headers=headers).json()
    assert [(d["device_id"], d["zone"], d["name_en"]) for d in devices["items"]] == [
        ("pump-1", "plant", "Supply pump 1")]
    assert len(client.get("/api/v1/devices", headers=headers).json()["items"]) == 2


def test_without_a_telemetry_store_history_is_503(tmp_path: Path) -> None:
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    with TestClient(create_app(services_with_users(db, FakeClock(NOW)))) as client:
        response = client.get("/api/v1/telemetry/north/pump/pump-1/vibration_mm_s", headers=login(client, "viewer"))
    db.dispose()
    assert response.status_code == 503
    assert "no telemetry store" in response.text
