"""The API as tests use it: services with one user per role, and bearer headers from a login."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import ApiServices
from api.security import hash_password
from core.clock import Clock
from core.domain import Role
from core.settings import load_settings
from runtime.api_process import build_services
from storage.state.database import StateDatabase

PASSWORD = "correct-horse"


@cache
def _hashed(password: str) -> str:
    return hash_password(password)  # argon2 is slow on purpose: hash once per test run


def services_with_users(db: StateDatabase, clock: Clock, *, ttl_minutes: int = 15,
                        password: str = PASSWORD) -> ApiServices:
    """Demo-environment services whose users `viewer`, `operator`, `engineer`, `admin` have `password`."""
    services = build_services(load_settings(environment="demo", jwt_ttl_minutes=ttl_minutes), db, clock)
    for role in Role:
        services.users.add(role.value, _hashed(password), role, clock.now())
    return services


def login(client: TestClient, user: str, password: str = PASSWORD) -> dict[str, str]:
    """Bearer headers for `user`; fails the test when the login is refused."""
    response = client.post("/api/v1/auth/token", data={"username": user, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@contextmanager
def streaming_client(app: FastAPI) -> Iterator[TestClient]:
    """A TestClient whose app's event hub publishes on the client's event loop, so that events
    published from test threads reach WebSocket streams."""
    with TestClient(app) as client:
        app.state.services.hub.bind(client.portal.call(_running_loop))  # type: ignore[union-attr]
        yield client


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()
