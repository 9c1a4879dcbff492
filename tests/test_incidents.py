"""Flood grouping into incidents (SQLite and PostgreSQL), and the incident and children routes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from alarms.actions import Action, AlarmActions
from api import errors
from api.routes import auth, incidents, kpis
from core.clock import Clock
from core.domain import Event, Family, MetricValue, Role
from storage.state.database import StateDatabase
from storage.state.models import Alarm, AuditEntry, Incident
from storage.state.registry import DeviceSpec, ZoneSpec
from tests.harness.api import login, services_with_users
from tests.test_inhibit import SITE, T0, Plant, inventory

F3, F4, GARAGE = "b1-f3-z1", "b1-f4-z1", "b1-garage"
DETECTORS = tuple(DeviceSpec(SITE, Family.FIRE_PANEL, f"det-f3-{n:02}", "", "b1", F3, "gw-b1") for n in range(30)) \
    + tuple(DeviceSpec(SITE, Family.FIRE_PANEL, f"det-f4-{n:02}", "", "b1", F4, "gw-b1") for n in range(2)) \
    + (DeviceSpec(SITE, Family.FIRE_PANEL, "fp-b1", "", "b1", "b1-f1-z1", "gw-b1"),) \
    + tuple(DeviceSpec(SITE, Family.GAS, f"gd-garage-{n}", "lel", "b1", GARAGE, "gw-b1") for n in range(3))
EXTRA_ZONES = (ZoneSpec(SITE, "b1", F3), ZoneSpec(SITE, "b1", F4), ZoneSpec(SITE, "b1", GARAGE))


def estate(db: StateDatabase) -> Plant:
    return Plant(db, inv=inventory(DETECTORS, EXTRA_ZONES))


def fire_in_zones(plant: Plant) -> None:
    for spec in DETECTORS:
        if spec.device_id.startswith("det-"):
            plant.read(Family.FIRE_PANEL, spec.device_id, fire=True)


def incidents_of(db: StateDatabase) -> list[Incident]:
    with db.session() as session:
        return list(session.scalars(select(Incident).order_by(Incident.id)))


def test_thirty_detectors_in_one_zone_make_one_incident(state_db: StateDatabase) -> None:
    plant = estate(state_db)
    fire_in_zones(plant)
    f3, f4 = incidents_of(state_db)
    assert (f3.cause, f3.building, f3.zone, f3.alarm_count, f3.grade, f3.state) == ("fire", "b1", F3, 30, 3, "open")
    assert (f4.zone, f4.alarm_count) == (F4, 2)
    assert (f3.title_zh, f3.title_en, f3.playbook) == ("火警：b1 / b1-f3-z1", "Fire: b1 / b1-f3-z1", "fire")
    with state_db.session() as session:
        assert session.scalar(select(Alarm.incident_id).where(Alarm.device_id == "det-f3-17")) == f3.id

    # the panel confirms the fire in zone F3 (its own location is the control room): grade 1 joins F3
    point: dict[str, MetricValue] = {"zone": F3, "component_type": 40}
    plant.at(30).read(Family.FIRE_PANEL, "fp-b1", events=(Event("point_fire", {**point, "address": 1}),
                                                          Event("point_fire", {**point, "address": 2})))
    f3, f4 = incidents_of(state_db)
    assert (f3.alarm_count, f3.grade) == (31, 1)
    with state_db.session() as session:
        actions = session.scalars(select(AuditEntry.action).where(
            AuditEntry.entity_type == "incident", AuditEntry.entity_id == str(f3.id)).order_by(AuditEntry.id))
        assert list(actions) == ["incident.opened", "incident.regraded"]


def test_an_incident_closes_when_all_its_alarms_are_normal(state_db: StateDatabase) -> None:
    plant = estate(state_db)
    actions = AlarmActions(state_db, plant.clock, plant.events.append)
    for n in range(3):
        plant.read(Family.GAS, f"gd-garage-{n}", lel_pct=30.0)
    [garage] = incidents_of(state_db)
    assert (garage.cause, garage.alarm_count, garage.state) == ("gas", 3, "open")
    for n in range(2):  # acknowledged: normal as soon as the gas clears
        actions.perform(plant.alarm("gas.lel_l1", f"gd-garage-{n}").id, Action.ACK, "op1")
    plant.at(60)
    for n in range(3):
        plant.read(Family.GAS, f"gd-garage-{n}", lel_pct=0.0)
    assert incidents_of(state_db)[0].state == "open"  # the third waits for its acknowledgement
    last = plant.alarm("gas.lel_l1", "gd-garage-2")
    plant.at(90)
    actions.perform(last.id, Action.ACK, "op1")  # rtn_unack → normal: AlarmActions settles the incident
    [garage] = incidents_of(state_db)
    assert (garage.state, garage.closed_at) == ("closed", T0 + timedelta(seconds=90))

    plant.at(120).read(Family.GAS, "gd-garage-0", lel_pct=30.0)  # a new leak: a new incident
    assert [(i.state, i.alarm_count) for i in incidents_of(state_db)] == [("closed", 3), ("open", 1)]


# --- routes ---------------------------------------------------------------------------------------

@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[StateDatabase]:
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    yield db
    db.dispose()


def api_app(db: StateDatabase, clock: Clock) -> FastAPI:
    """The app with these routers, as `api.app.create_app` builds it once they are in V1_ROUTERS."""
    services = services_with_users(db, clock)
    app = FastAPI()
    app.state.services = services
    errors.install(app)
    v1 = APIRouter(prefix="/api/v1")
    for router in (auth.router, incidents.router, kpis.router):
        v1.include_router(router)
    app.include_router(v1)
    return app




@pytest.fixture
def plant(sqlite_db: StateDatabase) -> Plant:
    return estate(sqlite_db)


@pytest.fixture
def client(sqlite_db: StateDatabase, plant: Plant) -> Iterator[TestClient]:
    with TestClient(api_app(sqlite_db, plant.clock)) as test_client:
        yield test_client


def test_every_route_declares_a_role_and_needs_a_token(client: TestClient) -> None:
    routes = [r for router in (incidents.router, kpis.router) for r in router.routes if isinstance(r, APIRoute)]
    steps = "/incidents/{incident_id}/steps/{step_id}"
    assert {r.path for r in routes} == {
        "/incidents", "/incidents/{incident_id}", "/alarms/{alarm_id}/children", "/kpis/alarms",
        "/incidents/{incident_id}/report", "/incidents/{incident_id}/close",
        *(f"{steps}/{action}" for action in ("complete", "skip", "assign", "comment"))}
    for route in routes:
        roles = [getattr(d.call, "required_role", None) for d in route.dependant.dependencies]
        method = next(iter(route.methods))
        assert (Role.VIEWER if method == "GET" else Role.OPERATOR) in roles, route.path
        path = route.path.replace("{incident_id}", "1").replace("{alarm_id}", "1").replace("{step_id}", "s")
        assert client.request(method, "/api/v1" + path).status_code == 401


def test_incident_list_and_detail(client: TestClient, plant: Plant) -> None:
    fire_in_zones(plant)
    headers = login(client, "viewer")
    body = client.get("/api/v1/incidents?state=open&site=s1", headers=headers).json()
    assert body["total"] == 2
    assert [(i["zone"], i["alarm_count"]) for i in body["items"]] == [(F4, 2), (F3, 30)]  # same grade: newest first
    assert client.get("/api/v1/incidents?state=closed", headers=headers).json() == {"items": [], "total": 0}
    assert client.get("/api/v1/incidents?site=elsewhere", headers=headers).json()["total"] == 0
    f3 = body["items"][1]
    detail = client.get(f"/api/v1/incidents/{f3['id']}", headers=headers).json()
    assert len(detail["alarms"]) == 30
    assert {a["incident_id"] for a in detail["alarms"]} == {f3["id"]}
    assert detail["alarms"][0]["suppressed"] is False
    assert [h["action"] for h in detail["history"]] == ["incident.opened"]
    assert client.get("/api/v1/incidents/999", headers=headers).status_code == 404
    for role in Role:
        assert client.get("/api/v1/incidents", headers=login(client, role.value)).status_code == 200


def test_alarm_children_route(client: TestClient, plant: Plant) -> None:
    plant.read(Family.METER, "em-b2-main", voltage_v=0.0)
    plant.read(Family.ELEVATOR, "el-b2-1", power_ok=False)
    parent = plant.alarm("meter.voltage_lost", "em-b2-main")
    headers = login(client, "viewer")
    body = client.get(f"/api/v1/alarms/{parent.id}/children", headers=headers).json()
    assert body["total"] == 1
    [child] = body["items"]
    assert (child["rule_id"], child["parent_id"], child["suppressed"], child["suppressed_by"]) == (
        "elevator.power_lost", parent.id, True, f"alarm:{parent.id}")
    assert child["incident_id"] == parent.incident_id
    assert client.get("/api/v1/alarms/999/children", headers=headers).status_code == 404


@pytest.mark.parametrize("query", ["state=asleep", "site=no%20spaces", "limit=0", "offset=-1"])
def test_bad_incident_queries_are_422_naming_the_parameter(client: TestClient, query: str) -> None:
    response = client.get(f"/api/v1/incidents?{query}", headers=login(client, "viewer"))
    assert response.status_code == 422
    assert query.split("=")[0] in str(response.json()["detail"])
