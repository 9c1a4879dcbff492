"""The HTTP API: token issue, bearer auth on every /api/v1 route, roles, alarm list, stream."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from alarms.service import AlarmService
from api.app import create_app, v1_routes
from api.security import hash_password
from core.clock import FakeClock
from core.domain import DeviceRef, Family, Reading, Role
from core.settings import load_settings
from rules.engine import RuleEngine
from rules.loader import rule_by_id
from runtime.api_process import build_services
from storage.state.database import StateDatabase
from tests.harness.api import PASSWORD, login, services_with_users, streaming_client

CO2_HIGH = rule_by_id("env.co2_high")

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
PUBLIC = {"/api/v1/auth/token"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def app(db: StateDatabase, clock: FakeClock) -> FastAPI:
    return create_app(services_with_users(db, clock))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with streaming_client(app) as test_client:
        yield test_client



def raise_co2_alarm(db: StateDatabase, clock: FakeClock, device: str = "room-1", grade_shift: int = 0) -> None:
    room = DeviceRef("s1", Family.ENV, device)
    readings = [Reading(room, T0 + timedelta(seconds=s), {"co2_ppm": 1300.0}) for s in (0, 60)]
    AlarmService(db, clock, lambda _e: None).apply(RuleEngine([CO2_HIGH]).process(readings))


def test_token_is_issued_for_the_right_password_only(client: TestClient) -> None:
    ok = client.post("/api/v1/auth/token", data={"username": "operator", "password": PASSWORD})
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "bearer"
    assert ok.json()["expires_in"] == 900
    assert ok.json()["role"] == "operator"
    for user, password in (("operator", "wrong-password"), ("nobody", PASSWORD)):
        bad = client.post("/api/v1/auth/token", data={"username": user, "password": password})
        assert bad.status_code == 401
        assert bad.json()["detail"] == "wrong username or password"
    assert client.post("/api/v1/auth/token", data={"username": "x"}).status_code == 422


def api_routes() -> list[tuple[str, APIRoute]]:
    return [(path, route) for path, route in v1_routes() if isinstance(route, APIRoute)]


def test_every_api_route_needs_a_bearer_token(client: TestClient) -> None:
    routes = api_routes()
    assert {path for path, _ in routes} >= {"/api/v1/alarms", "/api/v1/dead-letters", "/api/v1/auth/me"}
    for path, route in routes:
        if path in PUBLIC:
            continue
        for method in route.methods:
            response = client.request(method, path)
            assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
            assert response.headers["www-authenticate"] == "Bearer"


def test_every_route_declares_a_role() -> None:
    for path, route in api_routes():
        if path in PUBLIC:
            continue
        roles = [getattr(d.call, "required_role", None) for d in route.dependant.dependencies]
        assert any(isinstance(r, Role) for r in roles), f"{path} declares no role"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/api/v1/alarms", set(Role)), ("/api/v1/auth/me", set(Role)),
     ("/api/v1/dead-letters", {Role.ENGINEER, Role.ADMIN})],
)
def test_route_role_matrix(client: TestClient, path: str, allowed: set[Role]) -> None:
    for role in Role:
        status = client.get(path, headers=login(client, role.value)).status_code
        assert status == (200 if role in allowed else 403), f"{role.value} on {path}: {status}"


def test_expired_and_forged_tokens_are_refused(client: TestClient, clock: FakeClock) -> None:
    headers = login(client, "viewer")
    assert client.get("/api/v1/alarms", headers=headers).status_code == 200
    clock.advance(15 * 60)
    expired = client.get("/api/v1/alarms", headers=headers)
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    forged = {"Authorization": headers["Authorization"][:-4] + "AAAA"}
    assert client.get("/api/v1/alarms", headers=forged).status_code == 401


def test_alarm_list_and_filters(client: TestClient, db: StateDatabase, clock: FakeClock) -> None:
    raise_co2_alarm(db, clock, "room-1")
    raise_co2_alarm(db, clock, "room-2")
    headers = login(client, "viewer")
    body = client.get("/api/v1/alarms", headers=headers).json()
    assert body["total"] == 2
    assert {a["device_id"] for a in body["items"]} == {"room-1", "room-2"}
    first = body["items"][0]
    assert (first["state"], first["grade"], first["category"], first["rule_id"]) == (
        "unack", 4, "air_quality", "env.co2_high")
    assert first["raised_at"] == "2026-11-21T08:01:00Z"
    assert client.get("/api/v1/alarms?grade=1", headers=headers).json()["total"] == 0
    assert client.get("/api/v1/alarms?state=unack&open=true&site=s1", headers=headers).json()["total"] == 2
    assert client.get("/api/v1/alarms?limit=1", headers=headers).json()["items"].__len__() == 1


@pytest.mark.parametrize("query", [
    "grade=7", "state=asleep", "limit=0", "since=yesterday", "offset=-1",
    "since=2026-11-21T07:00:00", "until=2026-11-21T07:00:00",  # naive: no UTC offset
    "since=0001-01-01T00:00:00%2B14:00", "until=9999-12-31T23:59:59-14:00",  # overflow when made UTC
])
def test_bad_queries_are_4xx_naming_the_parameter(client: TestClient, query: str) -> None:
    response = client.get(f"/api/v1/alarms?{query}", headers=login(client, "viewer"))
    assert response.status_code == 422, response.text
    assert query.split("=")[0] in str(response.json()["detail"])


TOO_BIG = 2**63  # one above the largest 64-bit id
NAIVE = "2026-11-21T09:00:00"


@pytest.mark.parametrize(("method", "path", "body", "named"), [
    ("GET", f"/api/v1/alarms/{TOO_BIG}", None, "alarm_id"),
    ("POST", f"/api/v1/alarms/{TOO_BIG}/ack", {"reason": "x"}, "alarm_id"),
    ("POST", "/api/v1/alarms/1/shelve", {"reason": "x", "until": NAIVE}, "until"),
    ("POST", "/api/v1/alarms/shelve", {"ids": [1], "reason": "x", "until": NAIVE}, "until"),
    ("POST", "/api/v1/alarms/ack", {"ids": [TOO_BIG]}, "ids"),
    ("POST", "/api/v1/alarms/ack", {"ids": [{"id": 1, "version": TOO_BIG}]}, "version"),
    ("POST", "/api/v1/alarms/1/ack", {"version": TOO_BIG}, "version"),
    ("POST", f"/api/v1/maintenance/{TOO_BIG}/end", {"reason": "x"}, "window_id"),
    ("POST", "/api/v1/maintenance/99999999999999999999/end", {"reason": "x"}, "window_id"),
    ("POST", f"/api/v1/alarms/{TOO_BIG}/out-of-service", {"reason": "x"}, "alarm_id"),
    ("POST", "/api/v1/maintenance", {"site": "s1", "target_kind": "device", "target": "s1/env/r", "reason": "x",
                                     "until": NAIVE}, "until"),
    ("POST", "/api/v1/maintenance", {"site": "s1", "target_kind": "device", "target": "s1/env/r", "reason": "x",
                                     "until": "0001-01-01T00:00:00+14:00"}, "until"),
])
def test_bad_ids_and_times_in_actions_are_422_naming_the_parameter(
        client: TestClient, db: StateDatabase, clock: FakeClock, method: str, path: str,
        body: dict[str, object] | None, named: str) -> None:
    raise_co2_alarm(db, clock)  # alarm 1 exists: only the bad parameter can be wrong
    response = client.request(method, path, json=body, headers=login(client, "admin"))
    assert response.status_code == 422, response.text
    assert named in str(response.json()["detail"])


def test_stream_refuses_a_bad_token(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/api/v1/stream?token=nope") as ws:
        ws.receive_json()
    assert info.value.code == 4401


def test_stream_pushes_published_events(app: FastAPI, client: TestClient) -> None:
    token = login(client, "viewer")["Authorization"].split()[1]
    with client.websocket_connect(f"/api/v1/stream?token={token}") as ws:
        assert ws.receive_json() == {"type": "hello"}
        app.state.services.hub.publish_threadsafe({"type": "alarm", "event": "raised", "alarm": {"id": 1}})
        assert ws.receive_json() == {"type": "alarm", "event": "raised", "alarm": {"id": 1}}


def test_health_needs_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_console_is_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "<html" in page.text.lower()


def test_websocket_route_is_registered() -> None:
    paths = {path for path, route in v1_routes() if isinstance(route, APIWebSocketRoute)}
    assert "/api/v1/stream" in paths


def test_alarm_detail_with_history_and_ack(client: TestClient, db: StateDatabase, clock: FakeClock) -> None:
    raise_co2_alarm(db, clock)
    operator = login(client, "operator")
    [alarm] = client.get("/api/v1/alarms", headers=operator).json()["items"]
    body = {"reason": "ventilation on", "version": alarm["version"]}
    acked = client.post(f"/api/v1/alarms/{alarm['id']}/ack", json=body, headers=operator)
    assert acked.status_code == 200, acked.text
    assert (acked.json()["state"], acked.json()["acked_by"]) == ("acked", "operator")
    detail = client.get(f"/api/v1/alarms/{alarm['id']}", headers=login(client, "viewer")).json()
    assert [(h["action"], h["actor"], h["reason"]) for h in detail["history"]] == [
        ("alarm.raised", "system", "rule env.co2_high raise"), ("alarm.ack", "operator", "ventilation on")]
    assert detail["history"][1]["detail"] == {"from": "unack", "to": "acked"}


def test_the_second_operator_gets_409(client: TestClient, db: StateDatabase, clock: FakeClock) -> None:
    raise_co2_alarm(db, clock)
    first, second = login(client, "operator"), login(client, "admin")
    [alarm] = client.get("/api/v1/alarms", headers=first).json()["items"]
    body = {"reason": "seen", "version": alarm["version"]}
    assert client.post(f"/api/v1/alarms/{alarm['id']}/ack", json=body, headers=first).status_code == 200
    late = client.post(f"/api/v1/alarms/{alarm['id']}/ack", json=body, headers=second)
    assert late.status_code == 409
    assert "reload" in late.json()["detail"]
    again = client.post(f"/api/v1/alarms/{alarm['id']}/ack", json={"reason": "seen"}, headers=second)
    assert again.status_code == 409  # without a version: refused by the state machine instead


def test_shelve_rules_and_unshelve(client: TestClient, db: StateDatabase, clock: FakeClock) -> None:
    raise_co2_alarm(db, clock)
    headers = login(client, "operator")
    alarm_id = client.get("/api/v1/alarms", headers=headers).json()["items"][0]["id"]
    until = (clock.now() + timedelta(hours=2)).isoformat()
    no_reason = client.post(f"/api/v1/alarms/{alarm_id}/shelve", json={"until": until}, headers=headers)
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    too_long = (clock.now() + timedelta(hours=9)).isoformat()
    refused = client.post(f"/api/v1/alarms/{alarm_id}/shelve", json={"reason": "x", "until": too_long},
                          headers=headers)
    assert refused.status_code == 422 and "limited" in refused.json()["detail"]
    ok = client.post(f"/api/v1/alarms/{alarm_id}/shelve", json={"reason": "sensor swap", "until": until},
                     headers=headers)
    assert ok.status_code == 200 and ok.json()["shelve_reason"] == "sensor swap"
    assert client.get("/api/v1/alarms?shelved=false", headers=headers).json()["total"] == 0
    assert client.post(f"/api/v1/alarms/{alarm_id}/unshelve", json={}, headers=headers).status_code == 200
    assert client.get("/api/v1/alarms?shelved=false", headers=headers).json()["total"] == 1


def test_bulk_ack_reports_each_alarm(client: TestClient, db: StateDatabase, clock: FakeClock) -> None:
    raise_co2_alarm(db, clock, "room-1")
    raise_co2_alarm(db, clock, "room-2")
    headers = login(client, "operator")
    ids = [a["id"] for a in client.get("/api/v1/alarms", headers=headers).json()["items"]]
    results = client.post("/api/v1/alarms/ack", json={"ids": [*ids, 999], "reason": "shift start"},
                          headers=headers).json()["results"]
    assert sorted((r["id"], r["status"]) for r in results) == sorted([(ids[0], 200), (ids[1], 200), (999, 404)])
    again = client.post("/api/v1/alarms/ack", json={"ids": ids, "reason": "x"}, headers=headers).json()["results"]
    assert {r["status"] for r in again} == {409}


def test_bulk_actions_check_each_alarms_version(client: TestClient, db: StateDatabase, clock: FakeClock) -> None:
    raise_co2_alarm(db, clock, "room-1")
    raise_co2_alarm(db, clock, "room-2")
    headers = login(client, "operator")
    seen = {a["id"]: a["version"] for a in client.get("/api/v1/alarms", headers=headers).json()["items"]}
    first, second = sorted(seen)
    comment = {"ids": [first], "reason": "someone else was quicker"}
    assert client.post("/api/v1/alarms/comment", json=comment, headers=login(client, "admin")).status_code == 200
    client.post(f"/api/v1/alarms/{first}/ack", json={"reason": "x"}, headers=login(client, "admin"))
    items = [{"id": first, "version": seen[first]}, {"id": second, "version": seen[second]}, second]
    results = client.post("/api/v1/alarms/ack", json={"ids": items, "reason": "shift start"},
                          headers=headers).json()["results"]
    assert [(r["id"], r["status"]) for r in results] == [(first, 409), (second, 200)]  # once per id, first wins
    assert "reload" in results[0]["detail"]
    stale = client.post("/api/v1/alarms/unshelve", json={"ids": [{"id": second, "version": seen[second]}]},
                        headers=headers).json()["results"]
    assert [r["status"] for r in stale] == [409]
    one_version = client.post("/api/v1/alarms/ack", json={"ids": [first], "version": 1}, headers=headers)
    assert one_version.status_code == 422  # a version per id, not one for all


def test_the_shelve_maximum_comes_from_the_settings(db: StateDatabase, clock: FakeClock) -> None:
    settings = load_settings(environment="demo", alarm_max_shelve_hours=12)
    assert settings.alarm_max_shelve_hours == 12
    assert load_settings(environment="demo").alarm_max_shelve_hours == 8
    services = build_services(settings, db, clock)
    services.users.add("op", hash_password(PASSWORD), Role.OPERATOR, clock.now())
    raise_co2_alarm(db, clock)
    with TestClient(create_app(services)) as client:
        headers = login(client, "op")
        alarm_id = client.get("/api/v1/alarms", headers=headers).json()["items"][0]["id"]
        shelve = {"reason": "night works", "until": (clock.now() + timedelta(hours=12, seconds=1)).isoformat()}
        refused = client.post(f"/api/v1/alarms/{alarm_id}/shelve", json=shelve, headers=headers)
        assert refused.status_code == 422 and "limited to 12:00:00" in refused.json()["detail"]
        shelve["until"] = (clock.now() + timedelta(hours=12)).isoformat()
        assert client.post(f"/api/v1/alarms/{alarm_id}/shelve", json=shelve, headers=headers).status_code == 200


def test_viewers_cannot_act_and_unknown_actions_are_422(client: TestClient, db: StateDatabase,
                                                         clock: FakeClock) -> None:
    raise_co2_alarm(db, clock)
    viewer = login(client, "viewer")
    alarm_id = client.get("/api/v1/alarms", headers=viewer).json()["items"][0]["id"]
    assert client.post(f"/api/v1/alarms/{alarm_id}/ack", json={}, headers=viewer).status_code == 403
    operator = login(client, "operator")
    assert client.post(f"/api/v1/alarms/{alarm_id}/explode", json={}, headers=operator).status_code == 422
    assert client.post(f"/api/v1/alarms/{alarm_id}/ack", json={"colour": 1}, headers=operator).status_code == 422
    assert client.get("/api/v1/alarms/424242", headers=viewer).status_code == 404
    assert client.post(f"/api/v1/alarms/{alarm_id}/comment", json={"reason": ""}, headers=operator).status_code == 422
    commented = client.post(f"/api/v1/alarms/{alarm_id}/comment", json={"reason": "called the tenant"},
                            headers=operator)
    assert commented.status_code == 200


def test_sorting(client: TestClient, db: StateDatabase, clock: FakeClock) -> None:
    raise_co2_alarm(db, clock, "room-1")
    clock.advance(5)
    raise_co2_alarm(db, clock, "room-2")
    headers = login(client, "viewer")
    ids = [a["device_id"] for a in client.get("/api/v1/alarms?sort=id", headers=headers).json()["items"]]
    assert ids == ["room-1", "room-2"]
    ids = [a["device_id"] for a in client.get("/api/v1/alarms?sort=-id", headers=headers).json()["items"]]
    assert ids == ["room-2", "room-1"]
    assert client.get("/api/v1/alarms?sort=colour", headers=headers).status_code == 422
