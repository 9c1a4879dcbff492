"""The test harness starts real, working services and stops them without leaving processes."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from tests.harness import (
    InfluxServer,
    ManagedService,
    MosquittoServer,
    PostgresServer,
    ServiceStartError,
    ServiceUnavailable,
    pid_alive,
)
from tests.harness.binaries import find_binary
from tests.harness.policy import service_unavailable

WAIT_S = 10.0
ServiceT = TypeVar("ServiceT", bound=ManagedService)


@contextmanager
def mqtt_client(server: MosquittoServer, client_id: str) -> Iterator[mqtt.Client]:
    """A connected paho-mqtt 2 client running its network loop in a thread."""
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_connect = lambda *_: connected.set()
    client.connect(server.host, server.port)
    client.loop_start()
    try:
        assert connected.wait(WAIT_S), "no CONNACK from mosquitto"
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def test_mosquitto_delivers_a_qos1_message(mosquitto: MosquittoServer, unique_id: str) -> None:
    topic = f"{unique_id}/harness"
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    with (
        mqtt_client(mosquitto, f"{unique_id}-sub") as sub,
        mqtt_client(mosquitto, f"{unique_id}-pub") as pub,
    ):
        sub.on_subscribe = lambda *_: subscribed.set()
        sub.on_message = lambda _client, _userdata, message: received.put(message)
        sub.subscribe(topic, qos=1)
        assert subscribed.wait(WAIT_S), "no SUBACK from mosquitto"
        pub.publish(topic, b"21.5", qos=1).wait_for_publish(WAIT_S)
        message = received.get(timeout=WAIT_S)
    assert (message.topic, message.payload, message.qos) == (topic, b"21.5", 1)
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"


def test_influxdb_reads_back_written_points(influxdb: InfluxServer, influx_db: str, unique_id: str) -> None:
    assert influx_db == f"{influxdb.base_url}/{unique_id}"
    lines = "reading,site=s1 value=21.5 1700000000000\nreading,site=s2 value=19 1700000001000"
    params = {"db": unique_id, "precision": "ms"}
    response = httpx.post(f"{influxdb.base_url}/write", params=params, content=lines)
    assert response.status_code == 204, response.text

    result = influxdb.query(unique_id, "SELECT site, value FROM reading")

    series = result["results"][0]["series"][0]
    assert series["columns"] == ["time", "site", "value"]
    assert series["values"] == [
        ["2023-11-14T22:13:20Z", "s1", 21.5],
        ["2023-11-14T22:13:21Z", "s2", 19],
    ]


def test_postgres_runs_sql_through_sqlalchemy(postgres: PostgresServer, postgres_url: str, unique_id: str) -> None:
    assert postgres_url == postgres.url(unique_id)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE reading (id serial PRIMARY KEY, site text, value double precision)"))
            conn.execute(
                sa.text("INSERT INTO reading (site, value) VALUES (:site, :value)"),
                _rows(),
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT site, value FROM reading ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [("s1", 21.5), ("s2", 19.0)]


def _rows() -> list[dict[str, Any]]:
    return [{"site": "s1", "value": 21.5}, {"site": "s2", "value": 19.0}]


def _started(server: ServiceT) -> ServiceT:
    try:
        server.start()
    except ServiceUnavailable as exc:
        service_unavailable(exc)
    return server


@pytest.mark.parametrize("service_class", [MosquittoServer, InfluxServer, PostgresServer])
def test_stop_ends_every_server_process(service_class: type[ManagedService]) -> None:
    server = _started(service_class())
    pids, workdir = server.pids(), server.workdir
    assert pids
    assert pid_alive(server.pid)  # children may come and go (PostgreSQL's startup workers)

    server.stop()

    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not workdir.exists()
    server.stop()  # a second stop is harmless


def test_postgres_stop_does_not_wait_for_connected_clients() -> None:
    server = _started(PostgresServer(stop_timeout=5.0))
    client = psycopg.connect(host=server.host, port=server.port, user=server.user, dbname="postgres")
    try:
        pids = server.pids()  # includes the backend serving `client`
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5.0, "stop() waited for the client and then used SIGKILL"
    finally:
        client.close()
    assert [pid for pid in pids if pid_alive(pid)] == []


class _BrokenMosquitto(MosquittoServer):
    def _config_text(self) -> str:
        return super()._config_text() + "no_such_option 1\n"


def test_failed_start_reports_the_log_tail() -> None:
    server = _BrokenMosquitto()
    with pytest.raises(ServiceStartError, match=r"(?s)exited with code.*no_such_option"):
        _started(server)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.pid


def test_missing_binary_names_the_debian_package() -> None:
    with pytest.raises(ServiceUnavailable, match="apt-get install -y fmon-no-such-pkg"):
        find_binary("fmon-no-such-binary", "fmon-no-such-pkg")
