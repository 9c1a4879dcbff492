"""Root pytest fixtures: the real services tests run against (see tests/harness).

Servers start once per session, only when a test asks for one, and are stopped by PID at
the end. A missing binary skips the test locally and fails it when CI=true.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from storage.state.database import StateDatabase
from tests.harness import InfluxServer, ManagedService, MosquittoServer, PostgresServer, ServiceUnavailable
from tests.harness.policy import service_unavailable

CHROMIUM = Path("/usr/bin/chromium")

ServiceT = TypeVar("ServiceT", bound=ManagedService)


def pytest_configure(config: pytest.Config) -> None:
    """Make SIGTERM act like Ctrl-C, so that fixture teardown stops the servers before exit."""
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def _serve(service: ServiceT) -> Iterator[ServiceT]:
    try:
        service.start()
    except ServiceUnavailable as exc:
        service_unavailable(exc)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoServer]:
    """Mosquitto broker for the session; use `.host`, `.port`, `.url` (mqtt://127.0.0.1:PORT)."""
    yield from _serve(MosquittoServer())


@pytest.fixture(scope="session")
def influxdb() -> Iterator[InfluxServer]:
    """InfluxDB 1.x for the session; use `.base_url`, `.create_database()`, `.query()`."""
    yield from _serve(InfluxServer())


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """PostgreSQL for the session; use `.url(dbname)`, `.create_database()`."""
    yield from _serve(PostgresServer())


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of the Debian chromium binary, for Playwright's `executable_path`."""
    if not os.access(CHROMIUM, os.X_OK):
        service_unavailable(ServiceUnavailable(str(CHROMIUM), "chromium"))
    return str(CHROMIUM)


@pytest.fixture
def unique_id() -> str:
    """Short id unique to this test, e.g. "t3f9a0c1d2e", for topics, site ids, database names."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def influx_db(influxdb: InfluxServer, unique_id: str) -> Iterator[str]:
    """URL (http://127.0.0.1:PORT/NAME) of a fresh InfluxDB database named after `unique_id`."""
    yield influxdb.create_database(unique_id)
    influxdb.drop_database(unique_id)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDatabase]:
    """A migrated SQLite state database in the test's temporary directory (files that need
    PostgreSQL too use `state_db`)."""
    database = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def state_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateDatabase]:
    """A migrated state database, once on SQLite and once on a fresh real PostgreSQL database."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    db = StateDatabase(url)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def postgres_url(postgres: PostgresServer, unique_id: str) -> Iterator[str]:
    """SQLAlchemy URL of a fresh PostgreSQL database named after `unique_id`."""
    yield postgres.create_database(unique_id)
    postgres.drop_database(unique_id)
