"""The incident API: list with filters, detail with run and steps, operator start, step actions,
close, report, roles, audit and stream events. The whole app (`create_app`) over a real state
database; alarms come from the real rule engine and alarm service (tests/test_playbook_runs.py's
`Estate`), time from a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app, v1_routes
from core.domain import Role
from storage.state.database import StateDatabase
from storage.state.models import AuditEntry
from tests.harness.api import login, services_with_users, streaming_client
from tests.test_inhibit import SITE, T0
from tests.test_playbook_runs import MIN, Estate, level_1

STEPS = "/api/v1/incidents/{id}/steps/{step}"


@pytest.fixture
def estate(state_db: StateDatabase) -> Estate:
    return Estate(state_db)


@pytest.fixture
def app(state_db: StateDatabase, estate: Estate) -> FastAPI:
    return create_app(services_with_users(state_db, estate.clock, ttl_minutes=600))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with streaming_client(app) as test_client:
        yield test_client





def post(client: TestClient, path: str, body: dict[str, Any], user: str = "operator", expect: int = 200
         ) -> dict[str, Any]:
    response = client.post(path, json=body, headers=login(client, user))
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


def step_path(incident_id: int, step_id: str, action: str) -> str:
    return STEPS.format(id=incident_id, step=step_id) + "/" + action


def start_fire(client: TestClient, grade: int = 2) -> dict[str, Any]:
    return post(client, "/api/v1/incidents", {"playbook": "fire", "site": SITE, "grade": grade, "building": "b1",
                                              "zone": "b1-f1-z1", "note": "patrol saw smoke"}, expect=201)


# --- routes and roles ----------------------------------------------------------------------------

INCIDENT_ROUTES = [(p, r) for p, r in v1_routes() if isinstance(r, APIRoute) and p.startswith("/api/v1/incidents")]


def test_incident_routes_declare_viewer_reads_and_operator_actions() -> None:
    assert len(INCIDENT_ROUTES) == 9
    for path, route in INCIDENT_ROUTES:
        roles = [getattr(d.call, "required_role", None) for d in route.dependant.dependencies]
        expected = Role.VIEWER if route.methods == {"GET"} else Role.OPERATOR
        assert roles.count(expected) == 1, path


@pytest.mark.parametrize("state_db", ["sqlite"], indirect=True)
def test_viewers_read_and_cannot_act(client: TestClient, estate: Estate) -> None:
    level_1(estate)
    incident_id = estate.incident().id
    for path, route in INCIDENT_ROUTES:
        url = path.replace("{incident_id}", str(incident_id)).replace("{step_id}", "inspect")
        method = next(iter(route.methods))
        assert client.request(method, url).status_code == 401, path
        answer = client.request(method, url, headers=login(client, "viewer"), json={})
        assert answer.status_code == (200 if method == "GET" else 403), path


# --- reading -------------------------------------------------------------------------------------

def test_list_filters(client: TestClient, estate: Estate) -> None:
    level_1(estate)  # gas, grade 3, opened at T0 by an alarm
    estate.clock.advance(delta=10 * MIN)
    fire = start_fire(client, grade=2)
    headers = login(client, "viewer")

    def ids(**query: Any) -> list[int]:
        response = client.get("/api/v1/incidents", params=query, headers=headers)
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["items"]]

    [gas] = ids(playbook="gas-leak")
    assert ids() == [fire["id"], gas]  # open first, most severe first
    assert ids(playbook="fire") == [fire["id"]]
    assert ids(grade=3) == [gas] and ids(grade=[2, 3]) == [fire["id"], gas]
    assert ids(state="closed") == [] and ids(site="elsewhere") == []
    assert ids(**{"from": (T0 + 5 * MIN).isoformat()}) == [fire["id"]]
    assert ids(to=(T0 + 5 * MIN).isoformat()) == [gas]
    listed = client.get("/api/v1/incidents", headers=headers).json()["items"]
    assert listed[1]["run"]["playbook"] == "gas-leak"
    assert listed[1]["run"]["blocking_close"] == ["inspect", "leak-found", "fix-leak", "report"]
    assert listed[1]["run"]["overdue_steps"] == 0
    for bad in ({"from": "2026-03-02T09:00:00"}, {"from": T0.isoformat(), "to": T0.isoformat()},
                {"grade": 5}, {"state": "maybe"}, {"playbook": "Fire!"}):
        response = client.get("/api/v1/incidents", params=bad, headers=headers)
        assert response.status_code == 422, bad
        assert response.json()["detail"]


@pytest.mark.parametrize("state_db", ["sqlite"], indirect=True)
def test_detail_has_run_steps_commands_and_evidence(client: TestClient, estate: Estate) -> None:
    level_1(estate)
    incident_id = estate.incident().id
    post(client, step_path(incident_id, "inspect", "comment"),
         {"text": "hose clamp loose", "photo_url": "https://photos.example/1.jpg"})
    detail = client.get(f"/api/v1/incidents/{incident_id}", headers=login(client, "viewer")).json()
    assert [a["rule_id"] for a in detail["alarms"]] == ["gas.lel_l1"]
    run = detail["run"]
    assert (run["playbook"], run["state"], run["source_device"]) == ("gas-leak", "running", f"{SITE}/gas/gd-b2-canteen")
    steps = {s["step_id"]: s for s in run["steps"]}
    [command] = steps["start-fan"]["commands"]
    assert (command["name"], command["state"], command["readback_value"]) == ("start_fan", "done", {"fan": True})
    assert steps["inspect"]["evidence"] == [{"at": "2026-03-02T01:00:00Z", "by": "operator",
                                             "text": "hose clamp loose", "photo_url": "https://photos.example/1.jpg"}]
    assert steps["leak-found"]["options"][1]["then"] == "close"
    assert "playbook.started" in [h["action"] for h in detail["history"]]
    assert client.get("/api/v1/incidents/999", headers=login(client, "viewer")).status_code == 404


# --- acting --------------------------------------------------------------------------------------

@pytest.mark.parametrize("state_db", ["sqlite"], indirect=True)
def test_operator_start(client: TestClient, estate: Estate) -> None:
    started = start_fire(client)
    assert (started["state"], started["grade"], started["cause"], started["zone"]) == ("open", 2, "fire", "b1-f1-z1")
    assert started["run"]["started_by"] == "operator"
    assert post(client, "/api/v1/incidents", {"playbook": "fire", "site": SITE, "grade": 1, "building": "b1",
                                              "zone": "b1-f1-z1"}, expect=409)["detail"].startswith("incident")
    assert "no playbook 'lava'" in post(client, "/api/v1/incidents", {"playbook": "lava", "site": SITE, "grade": 1},
                                        expect=422)["detail"]
    for bad in ({"playbook": "fire", "site": SITE, "grade": 0}, {"playbook": "fire", "site": "a b", "grade": 1},
                {"playbook": "fire", "site": SITE, "grade": 1, "device": "nodevice"},
                {"playbook": "fire", "site": SITE, "grade": 1, "colour": "red"}):
        post(client, "/api/v1/incidents", bad, expect=422)


@pytest.mark.parametrize("state_db", ["sqlite"], indirect=True)
def test_step_actions_and_their_errors(client: TestClient, estate: Estate) -> None:
    level_1(estate)
    incident_id = estate.incident().id
    assigned = post(client, step_path(incident_id, "inspect", "assign"), {"assignee": "tech-3"})
    assert (assigned["step"]["assignee"], assigned["step"]["status"]) == ("tech-3", "in_progress")
    assert assigned["incident"]["run"]["open_steps"] == 5
    post(client, step_path(incident_id, "inspect", "complete"), {"version": 1}, expect=409)  # stale version
    done = post(client, step_path(incident_id, "inspect", "complete"), {"reason": "28 %LEL at the hose"})
    assert (done["step"]["status"], done["step"]["done_by"]) == ("done", "operator")
    post(client, step_path(incident_id, "inspect", "complete"), {}, expect=409)
    assert "needs a reason" in post(client, step_path(incident_id, "fix-leak", "skip"), {"reason": " "},
                                    expect=422)["detail"]
    post(client, step_path(incident_id, "fix-leak", "skip"), {}, expect=422)
    post(client, step_path(incident_id, "inspect", "comment"), {"text": "x", "photo_url": "ftp://x"}, expect=422)
    assert "one of leak, false-alarm" in post(client, step_path(incident_id, "leak-found", "complete"),
                                              {"option": "perhaps"}, expect=422)["detail"]
    post(client, step_path(incident_id, "leak-found", "complete"), {"option": "leak", "confirm": True}, expect=422)
    post(client, step_path(incident_id, "no-such-step", "complete"), {}, expect=404)
    post(client, step_path(incident_id, "Bad_Step", "complete"), {}, expect=422)
    post(client, step_path(999, "inspect", "complete"), {}, expect=404)
    post(client, step_path(incident_id, "leak-found", "complete"), {"option": "leak"})
    with estate.db.session() as session:
        people = session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "operator")
                                 .order_by(AuditEntry.id)).all()
    assert people == ["step.assigned", "step.done", "step.decided"]  # the note is in step.done's reason


@pytest.mark.parametrize("state_db", ["sqlite"], indirect=True)
def test_command_confirmation_through_the_api(client: TestClient, estate: Estate) -> None:
    level_1(estate).at(MIN).gas(55.0, fan=True)
    incident_id = estate.incident().id
    path = step_path(incident_id, "close-valve", "complete")
    assert "confirm=true" in post(client, path, {}, expect=422)["detail"]
    confirmed = post(client, path, {"confirm": True})
    assert (confirmed["step"]["status"], confirmed["step"]["confirmed_by"]) == ("in_progress", "operator")
    assert [c["state"] for c in confirmed["step"]["commands"]] == ["queued"]
    post(client, path, {"confirm": True}, expect=409)  # already sent: waiting for the device
    estate.tick()
    [close] = estate.sender.named("close_valve")
    estate.gas(50.0, fan=True, valve="closed").ack(close)
    detail = client.get(f"/api/v1/incidents/{incident_id}", headers=login(client, "viewer")).json()
    step = next(s for s in detail["run"]["steps"] if s["step_id"] == "close-valve")
    assert step["status"] == "done"


def test_close_is_409_until_mandatory_steps_are_done_then_the_report(client: TestClient, estate: Estate) -> None:
    level_1(estate)
    incident_id = estate.incident().id
    close = f"/api/v1/incidents/{incident_id}/close"
    refused = post(client, close, {"reason": "all clear"}, expect=409)["detail"]
    assert "mandatory steps still open: inspect (pending), leak-found (pending), fix-leak (pending)" in refused
    post(client, close, {"reason": ""}, expect=422)
    viewer = login(client, "viewer")
    interim = client.get(f"/api/v1/incidents/{incident_id}/report", headers=viewer)
    assert interim.status_code == 200 and "未关闭 / OPEN" in interim.text
    assert interim.headers["content-type"].startswith("text/markdown")
    estate.clock.advance(delta=3 * MIN)
    for step_id in ("inspect", "fix-leak", "report"):
        post(client, step_path(incident_id, step_id, "complete"), {}, user="operator")
    post(client, step_path(incident_id, "leak-found", "complete"), {"option": "leak"}, user="engineer")
    closed = post(client, close, {"reason": "hose replaced, re-tested"})
    assert (closed["state"], closed["run"]["closed_by"]) == ("closed", "operator")
    post(client, close, {"reason": "again"}, expect=409)

    text = client.get(f"/api/v1/incidents/{incident_id}/report?format=md", headers=viewer).text
    assert "hose replaced, re-tested" in text and "未关闭" not in text
    assert "| 响应（首次人工处置） / Response (first action by a person) | ≤ 15m00s | 3m00s | 达标 / met |" in text
    assert "- **engineer**: 决策 / decision ×1" in text
    page = client.get(f"/api/v1/incidents/{incident_id}/report", params={"format": "html"}, headers=viewer)
    assert page.headers["content-type"].startswith("text/html")
    assert "<h2>响应时效 / Response times (SLA)</h2>" in page.text
    assert client.get(f"/api/v1/incidents/{incident_id}/report?format=pdf", headers=viewer).status_code == 422
    assert client.get("/api/v1/incidents/999/report", headers=viewer).status_code == 404


@pytest.mark.parametrize("state_db", ["sqlite"], indirect=True)
def test_incident_events_go_to_the_stream(client: TestClient, estate: Estate) -> None:
    token = login(client, "viewer")["Authorization"].split()[1]
    with client.websocket_connect(f"/api/v1/stream?token={token}") as ws:
        assert ws.receive_json() == {"type": "hello"}
        started = start_fire(client)
        opened = ws.receive_json()
        assert (opened["type"], opened["event"], opened["incident"]["id"]) == ("incident", "incident.opened",
                                                                              started["id"])
        post(client, step_path(started["id"], "confirm", "assign"), {"assignee": "guard-2"})
        updated = ws.receive_json()
        assert (updated["event"], updated["step"]["step_id"], updated["step"]["assignee"]) == (
            "step.updated", "confirm", "guard-2")
