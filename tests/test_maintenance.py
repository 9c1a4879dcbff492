"""Maintenance mode and out of service: suppressed by design, recorded, shown again after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alarms import maintenance
from alarms.events import AlarmEvent
from alarms.kpis import KpiWindow, alarm_kpis
from alarms.maintenance import MaintenanceStage
from alarms.service import AlarmService
from api.app import create_app
from core.clock import FakeClock
from core.domain import DeviceRef, Family, Reading
from rules.engine import RuleEngine
from rules.loader import rule_by_id
from storage.state.database import StateDatabase
from storage.state.models import Alarm, AuditEntry
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


def audit_of(db: StateDatabase, alarm_id: int) -> list[tuple[str, dict[str, object]]]:
    with db.session() as session:
        query = select(AuditEntry).where(AuditEntry.entity_type == "alarm", AuditEntry.entity_id == str(alarm_id))
        return [(a.action, a.detail) for a in session.scalars(query.order_by(AuditEntry.id))]


def test_starting_a_window_suppresses_the_open_alarms_it_covers(state_db: StateDatabase) -> None:
    clock = FakeClock(T0)
    raise_co2(state_db, clock, "room-1")  # located b1/f2 (see raise_co2)
    with state_db.session() as session:
        other_site = maintenance.start(session, "s2", "zone", "b1/f2", "not here", T0 + timedelta(hours=1), "eng1", T0)
    assert alarms(state_db)["room-1"].suppressed_by is None
    with state_db.session() as session:
        window, suppressed = maintenance.begin(session, "s1", "zone", "b1/f2", "replacing sensors",
                                               T0 + timedelta(hours=2), "eng1", T0 + timedelta(minutes=5))
        window_id = window.id
        assert [a.device_id for a in suppressed] == ["room-1"]
    room = alarms(state_db)["room-1"]
    assert (room.suppressed_by, room.state) == (f"maintenance:{window_id}", "unack")
    assert other_site.id != window_id
    with state_db.session() as session:
        maintenance.end(session, window_id, "eng1", "done", T0 + timedelta(minutes=30))
    by = f"maintenance:{window_id}"
    assert audit_of(state_db, room.id)[1:] == [
        ("alarm.suppressed", {"by": by, "activation": None}),  # already annunciated: still counted
        ("alarm.unsuppressed", {"by": by, "from": "unack", "to": "unack"})]


def test_activations_under_maintenance_are_audited_and_left_out_of_the_kpis(state_db: StateDatabase) -> None:
    clock = FakeClock(T0)
    with state_db.session() as session:
        window_id = maintenance.start(session, "s1", "device", "s1/env/room-2", "calibration",
                                      T0 + timedelta(hours=1), "eng1", T0).id
    raise_co2(state_db, clock, "room-2")
    raise_co2(state_db, clock, "room-3")  # not in maintenance: annunciated
    room = alarms(state_db)["room-2"]
    by = f"maintenance:{window_id}"
    assert audit_of(state_db, room.id) == [("alarm.raised", audit_of(state_db, room.id)[0][1]),
                                           ("alarm.suppressed", {"by": by, "activation": "raise"})]
    with state_db.session() as session:
        room_2 = session.get(Alarm, room.id)
        assert room_2 is not None
        room_2.condition_active, room_2.state = False, "rtn_unack"
    with state_db.session() as session:
        maintenance.expire(session, T0 + timedelta(hours=1))
    assert audit_of(state_db, room.id)[-1] == ("alarm.normalised", {"by": by, "from": "rtn_unack", "to": "normal"})
    with state_db.session() as session:
        kpis = alarm_kpis(session, KpiWindow(T0, T0 + timedelta(hours=2)))
    assert (kpis["activations"], kpis["suppressed"]) == (1, 1)
    assert [c["source"] for c in kpis["top_contributors"]] == ["s1/env/room-3"]


def test_api_maintenance_changes_are_published(state_db: StateDatabase) -> None:
    clock = FakeClock(T0)
    services = services_with_users(state_db, clock)
    published: list[AlarmEvent] = []
    services.publish_alarm = published.append
    raise_co2(state_db, clock, "room-5")
    alarm_id = alarms(state_db)["room-5"].id
    with TestClient(create_app(services)) as client:
        engineer = login(client, "engineer")
        body = {"site": "s1", "target_kind": "device", "target": "s1/env/room-5", "reason": "swap",
                "until": (T0 + timedelta(hours=1)).isoformat()}
        started = client.post("/api/v1/maintenance", json=body, headers=engineer).json()
        assert [a["id"] for a in started["suppressed"]] == [alarm_id]
        client.post(f"/api/v1/maintenance/{started['id']}/end", json={"reason": "done"}, headers=engineer)
        client.post(f"/api/v1/alarms/{alarm_id}/out-of-service", json={"reason": "faulty"}, headers=engineer)
    assert [(e.event, e.alarm["suppressed_by"], e.alarm["out_of_service"]) for e in published] == [
        ("updated", f"maintenance:{started['id']}", False), ("updated", None, False), ("updated", None, True)]
    versions = [e.alarm["version"] for e in published]
    assert versions == sorted(set(versions))  # each event carries the version after its change
