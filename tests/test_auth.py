"""Sessions over time: token renewal (POST /api/v1/auth/refresh) and the WebSocket stream
ending connections whose token expired or whose user was disabled or removed.

Time is a FakeClock; the stream's periodic re-check is triggered by hand (`hub.revalidate`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete, update
from starlette.websockets import WebSocketDisconnect

from api.app import create_app
from api.hub import EventHub
from core.clock import FakeClock
from runtime.api_process import revalidate_streams
from storage.state.database import StateDatabase
from storage.state.models import User
from tests.harness.api import login, services_with_users, streaming_client

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
CLOSE_UNAUTHORIZED, CLOSE_POLICY_VIOLATION = 4401, 1008
EVENT = {"type": "alarm", "event": "raised", "alarm": {"id": 1}}


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



def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_of(client: TestClient, user: str) -> str:
    return login(client, user)["Authorization"].split()[1]


def refresh(client: TestClient, token: str) -> tuple[int, dict[str, object]]:
    response = client.post("/api/v1/auth/refresh", headers=bearer(token))
    return response.status_code, response.json()


def set_user(db: StateDatabase, name: str, **values: object) -> None:
    with db.session() as session:
        session.execute(update(User).where(User.username == name).values(**values))


# ------------------------------------------------------------------------------ renewal


def test_a_valid_token_is_renewed_and_the_new_one_outlives_the_old(client: TestClient, clock: FakeClock) -> None:
    old = token_of(client, "operator")
    clock.advance(12 * 60)  # when the console renews: 80 % of 15 minutes
    status, body = refresh(client, old)
    assert status == 200
    assert (body["token_type"], body["expires_in"], body["role"]) == ("bearer", 900, "operator")
    new = str(body["access_token"])
    assert new != old
    clock.advance(5 * 60)  # the old token has expired, the new one has not
    assert client.get("/api/v1/alarms", headers=bearer(old)).status_code == 401
    assert client.get("/api/v1/alarms", headers=bearer(new)).status_code == 200


def test_renewal_reads_the_current_role(client: TestClient, db: StateDatabase) -> None:
    token = token_of(client, "operator")
    set_user(db, "operator", role="viewer")
    status, body = refresh(client, token)
    assert (status, body["role"]) == (200, "viewer")
    me = client.get("/api/v1/auth/me", headers=bearer(str(body["access_token"])))
    assert me.json() == {"username": "operator", "role": "viewer"}


def test_expired_tokens_and_inactive_users_are_not_renewed(client: TestClient, db: StateDatabase,
                                                           clock: FakeClock) -> None:
    token = token_of(client, "operator")
    clock.advance(15 * 60)
    status, body = refresh(client, token)
    assert (status, body["detail"]) == (401, "token expired")

    disabled = token_of(client, "engineer")
    set_user(db, "engineer", disabled=True)
    assert refresh(client, disabled) == (401, {"detail": "user no longer active"})

    gone = token_of(client, "viewer")
    with db.session() as session:
        session.execute(delete(User).where(User.username == "viewer"))
    assert refresh(client, gone)[0] == 401

    assert client.post("/api/v1/auth/refresh").status_code == 401
    assert refresh(client, "not-a-token")[0] == 401


def test_renewals_end_a_day_after_the_password_was_given(client: TestClient, clock: FakeClock) -> None:
    token, renewals = token_of(client, "operator"), 0
    while True:
        clock.advance(12 * 60)
        status, body = refresh(client, token)
        if status != 200:
            break
        token, renewals = str(body["access_token"]), renewals + 1
    assert renewals == 24 * 5 - 1  # every 12 minutes for 24 hours
    assert "sign in again" in str(body["detail"])
    assert client.post("/api/v1/auth/token", data={"username": "operator", "password": "correct-horse"}).is_success


# ------------------------------------------------------------------------------ stream


def test_the_stream_refuses_disabled_and_removed_users(client: TestClient, db: StateDatabase) -> None:
    token = token_of(client, "operator")
    set_user(db, "operator", disabled=True)
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(f"/api/v1/stream?token={token}") as ws:
        ws.receive_json()
    assert (info.value.code, info.value.reason) == (CLOSE_UNAUTHORIZED, "user no longer active")


def test_the_stream_refuses_a_missing_or_expired_token(client: TestClient, clock: FakeClock) -> None:
    token = token_of(client, "operator")
    clock.advance(15 * 60)
    for query in (f"?token={token}", ""):
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(f"/api/v1/stream{query}") as ws:
            ws.receive_json()
        assert info.value.code == CLOSE_UNAUTHORIZED


def test_the_stream_ends_when_the_token_expires(app: FastAPI, client: TestClient, clock: FakeClock) -> None:
    hub: EventHub = app.state.services.hub
    token = token_of(client, "viewer")
    with client.websocket_connect(f"/api/v1/stream?token={token}") as ws:
        assert ws.receive_json() == {"type": "hello"}
        hub.revalidate_threadsafe()  # a re-check while valid changes nothing and sends nothing
        hub.publish_threadsafe(EVENT)
        assert ws.receive_json() == EVENT
        clock.advance(15 * 60)
        hub.publish_threadsafe(EVENT)  # not delivered: the token has expired
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
    assert (info.value.code, info.value.reason) == (CLOSE_POLICY_VIOLATION, "token expired")


def test_the_periodic_recheck_ends_an_expired_token_without_events(app: FastAPI, client: TestClient,
                                                                   clock: FakeClock) -> None:
    token = token_of(client, "viewer")
    with client.websocket_connect(f"/api/v1/stream?token={token}") as ws:
        assert ws.receive_json() == {"type": "hello"}
        clock.advance(15 * 60)
        app.state.services.hub.revalidate_threadsafe()
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
    assert info.value.code == CLOSE_POLICY_VIOLATION


@pytest.mark.parametrize("change", ["disabled", "removed"])
def test_the_stream_ends_when_the_user_is_disabled_or_removed(app: FastAPI, client: TestClient, db: StateDatabase,
                                                              change: str) -> None:
    token = token_of(client, "operator")
    with client.websocket_connect(f"/api/v1/stream?token={token}") as ws:
        assert ws.receive_json() == {"type": "hello"}
        if change == "disabled":
            set_user(db, "operator", disabled=True)
        else:
            with db.session() as session:
                session.execute(delete(User).where(User.username == "operator"))
        app.state.services.hub.revalidate_threadsafe()
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
    assert (info.value.code, info.value.reason) == (CLOSE_POLICY_VIOLATION, "user no longer active")


async def test_the_api_process_rechecks_streams_until_stopped() -> None:
    class CountingHub(EventHub):
        def __init__(self, stop: asyncio.Event) -> None:
            super().__init__()
            self.count, self.stop = 0, stop

        def revalidate(self) -> None:
            self.count += 1
            if self.count == 3:
                self.stop.set()

    stop = asyncio.Event()
    hub = CountingHub(stop)
    await asyncio.wait_for(revalidate_streams(hub, stop, every_s=0), timeout=10)
    assert hub.count == 3  # and none after the stop
