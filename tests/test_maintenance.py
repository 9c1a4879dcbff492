"""Maintenance mode and out of service: suppressed by design, recorded, shown again after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alarms import maintenance
from alarms.maintenance import MaintenanceStage
from alarms.service import AlarmService
from api.app import create_app
from core.clock import FakeClock
from core.domain import DeviceRef, Family, Reading
from rules.engine import RuleEngine
from rules.loader import rule_by_id
from storage.state.database import StateDatabase
from storage.state.models import Alarm
from tests.harness.api import login, services_with_users

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
CO2 = rule_by_id("env.co2_high")


def raise_co2(db: StateDatabase, clock: FakeClock, device: str, start: float = 0) -> None:
    room = DeviceRef("s1", Family.ENV, device)
    readings = [Reading(room, T0 + timedelta(seconds=start + s), {"co2_ppm": 1300.0}) for s in (0, 60)]
    service = AlarmService(db, clock, lambda _e: None, lambda _s: ("b1", "f2"), stages=[MaintenanceStage()])
    service.apply(RuleEngine([CO2]).process(readings))


def alarms(db: StateDatabase) -> dict[str, Alarm]:
    with db.session() as session:
        return {a.device_id: a for a in session.scalars(select(Alarm))}


def test_alarms_in_a_zone_under_maintenance_are_suppressed_then_shown_again(state_db: StateDatabase) -> None:
    clock = FakeClock(T0)
    with state_db.session() as session:
        window = maintenance.start(session, "s1", "zone", "b1/f2", "replacing sensors", T0 + timedelta(hours=2),
                                   "eng1", T0)
        window_id = window.id
    raise_co2(state_db, clock, "room-1")
    assert alarms(state_db)["room-1"].suppressed_by == f"maintenance:{window_id}"
    with state_db.session() as session:
        released = maintenance.end(session, window_id, "eng1", "done", T0 + timedelta(minutes=30))
        assert [a.device_id for a in released] == ["room-1"]
    assert alarms(state_db)["room-1"].suppressed_by is None
    assert alarms(state_db)["room-1"].state == "unack"  # still active: shown, to be acknowledged


def test_a_window_that_runs_out_releases_and_normalises_cleared_alarms(state_db: StateDatabase) -> None:
    clock = FakeClock(T0)
    with state_db.session() as session:
        maintenance.start(session, "s1", "device", "s1/env/room-2", "calibration", T0 + timedelta(hours=1), "eng1", T0)
    raise_co2(state_db, clock, "room-2")
    with state_db.session() as session:
        alarm = session.scalars(select(Alarm)).one()
        alarm.condition_active, alarm.state = False, "rtn_unack"
    with state_db.session() as session:
        assert maintenance.expire(session, T0 + timedelta(minutes=59)) == []
        assert len(maintenance.expire(session, T0 + timedelta(hours=1))) == 1
    assert (alarms(state_db)["room-2"].state, alarms(state_db)["room-2"].suppressed_by) == ("normal", None)


@pytest.mark.parametrize(("reason", "until", "error"), [
    ("", T0 + timedelta(hours=1), "reason"),
    ("ok", T0 - timedelta(minutes=1), "future"),
    ("ok", T0 + timedelta(days=31), "30 days"),
])
def test_maintenance_needs_reason_and_bounded_time(state_db: StateDatabase, reason: str, until: datetime,
                                                   error: str) -> None:
    with pytest.raises(maintenance.InvalidRequest, match=error), state_db.session() as session:
        maintenance.start(session, "s1", "device", "s1/env/x", reason, until, "eng1", T0)


def test_api_maintenance_and_out_of_service(state_db: StateDatabase) -> None:
    clock = FakeClock(T0)
    services = services_with_users(state_db, clock)
    raise_co2(state_db, clock, "room-3")
    alarm_id = alarms(state_db)["room-3"].id
    with TestClient(create_app(services)) as client:
        operator, engineer = login(client, "operator"), login(client, "engineer")
        body = {"site": "s1", "target_kind": "device", "target": "s1/env/room-4", "reason": "swap",
                "until": (T0 + timedelta(hours=1)).isoformat()}
        assert client.post("/api/v1/maintenance", json=body, headers=operator).status_code == 403
        started = client.post("/api/v1/maintenance", json=body, headers=engineer)
        assert started.status_code == 200
        assert [w["target"] for w in client.get("/api/v1/maintenance", headers=operator).json()["items"]] == [
            "s1/env/room-4"]
        bad = client.post("/api/v1/maintenance", json={**body, "target_kind": "galaxy"}, headers=engineer)
        assert bad.status_code == 422
        oos = client.post(f"/api/v1/alarms/{alarm_id}/out-of-service", json={"reason": "faulty sensor"},
                          headers=engineer)
        assert oos.status_code == 200 and oos.json()["out_of_service"] is True
        assert client.get("/api/v1/alarms?suppressed=false", headers=operator).json()["total"] == 0
        again = client.post(f"/api/v1/alarms/{alarm_id}/out-of-service", json={"reason": "x"}, headers=engineer)
        assert again.status_code == 409
        back = client.post(f"/api/v1/alarms/{alarm_id}/return-to-service", json={"reason": "repaired"},
                           headers=engineer)
        assert back.status_code == 200
        assert client.get("/api/v1/alarms?suppressed=false", headers=operator).json()["total"] == 1
        ended = client.post(f"/api/v1/maintenance/{started.json()['id']}/end", json={"reason": "done"},
                            headers=engineer)
        assert ended.status_code == 200
        assert client.post(f"/api/v1/maintenance/{started.json()['id']}/end", json={"reason": "again"},
                           headers=engineer).status_code == 409
