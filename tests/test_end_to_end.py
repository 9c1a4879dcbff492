"""The thinnest path end to end, with real parts.

A simulated environmental sensor publishes over MQTT → ingest decodes and validates → the
CO2 rule (> 1000 ppm held 60 s) raises an alarm → the state database holds it with an audit
entry → `GET /api/v1/alarms` lists it and `/api/v1/stream` pushes it → the telemetry store
holds the readings. Run against Mosquitto + InfluxDB + PostgreSQL, and against the embedded
defaults (amqtt + SQLite).

Readings carry timestamps 5 s apart covering 70 s, published at once: the on-delay runs on
reading time, so the test does not wait a minute.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from websockets.sync.client import connect as ws_connect

from api.security import hash_password
from core.clock import SystemClock
from core.domain import Role
from core.settings import Settings, load_settings
from runtime.api_process import build_services, serve_api
from runtime.embedded_broker import start_embedded_broker
from runtime.ingest_process import build_ingest
from runtime.stores import open_telemetry_store
from simulators.site import demo_site
from storage.state.database import StateDatabase
from storage.state.models import Alarm, AuditEntry, Incident
from storage.state.playbook_models import PlaybookRun
from tests.harness.process import free_port
from tests.harness.services import MosquittoServer

PASSWORD = "e2e-password"
MEETING = "env-b1-f2-meeting"


class EmbeddedBroker:
    """The demo's amqtt broker, run on its own event loop in a thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> EmbeddedBroker:
        self._thread.start()
        self._broker = asyncio.run_coroutine_threadsafe(
            start_embedded_broker("127.0.0.1", self.port), self._loop).result(10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def _common(tmp_path: Path) -> dict[str, Any]:
    return {"environment": "demo", "data_dir": tmp_path, "api_port": free_port(),
            "ingest_flush_seconds": 0.05, "rule_tick_seconds": 0.2}


def _real_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return load_settings(broker_url=request.getfixturevalue("mosquitto").url,
                         influx_url=request.getfixturevalue("influx_db"),
                         database_url=request.getfixturevalue("postgres_url"), **_common(tmp_path))


@pytest.fixture(params=["real-services", "embedded"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    common = _common(tmp_path)
    if request.param == "real-services":
        yield _real_settings(request, tmp_path)
        return
    with EmbeddedBroker() as broker:
        yield load_settings(broker_url=f"mqtt://127.0.0.1:{broker.port}", **common)


@dataclass
class RunningFmon:
    settings: Settings
    db: StateDatabase
    base_url: str
    ingest: Any


@pytest.fixture
def fmon(settings: Settings) -> Iterator[RunningFmon]:
    yield from _running(settings)


@pytest.fixture
def fmon_real(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningFmon]:
    """fmon on Mosquitto + InfluxDB + PostgreSQL only."""
    yield from _running(_real_settings(request, tmp_path))


def _running(settings: Settings) -> Iterator[RunningFmon]:
    clock = SystemClock()
    db = StateDatabase(settings.state_database_url)
    db.upgrade()
    services = build_services(settings, db, clock)
    for role in (Role.OPERATOR, Role.ENGINEER):
        services.users.add(role.value, hash_password(PASSWORD), role, clock.now())
    ingest = build_ingest(settings, db, clock, services.metrics)
    ingest.start()
    assert ingest.consumer.connected.wait(10), "ingest did not connect to the broker"
    loop = asyncio.new_event_loop()
    stop, started = asyncio.Event(), threading.Event()

    async def serve() -> None:
        ready = asyncio.Event()
        waiter = asyncio.create_task(ready.wait())
        waiter.add_done_callback(lambda _t: started.set())
        await serve_api(settings, services, stop, ready)

    api = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    api.start()
    assert started.wait(15), "API did not start"
    yield RunningFmon(settings, db, f"http://127.0.0.1:{settings.api_port}", ingest)
    loop.call_soon_threadsafe(stop.set)
    api.join(10)
    loop.close()
    ingest.stop()
    db.dispose()


def publish_site(settings: Settings, site: str, extra: list[tuple[str, bytes]]) -> int:
    """Publish 70 s of the demo site's readings (5 s apart, timestamps in the past) at once."""
    sim = demo_site(site, seed=7)
    start = SystemClock().now() - timedelta(seconds=120)
    messages = [m for step in range(15) for m in sim.messages(start + timedelta(seconds=5 * step))]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"e2e-{site}")
    host, port = settings.broker_url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in [*messages, *extra]]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    return len(messages)


def token(base_url: str, user: str = "operator") -> str:
    response = httpx.post(f"{base_url}/api/v1/auth/token", data={"username": user, "password": PASSWORD})
    response.raise_for_status()
    return str(response.json()["access_token"])


def test_co2_reading_becomes_a_listed_and_pushed_alarm(fmon: RunningFmon, unique_id: str) -> None:
    bearer = token(fmon.base_url)
    ws_url = fmon.base_url.replace("http", "ws") + f"/api/v1/stream?token={bearer}"
    bad = (f"fmon/v1/{unique_id}/env/env-broken/telemetry", b'{"metrics": {"co2_ppm": "lots"}}')
    with ws_connect(ws_url, open_timeout=10) as ws:
        assert orjson.loads(ws.recv(10)) == {"type": "hello"}
        sent = publish_site(fmon.settings, unique_id, [bad])
        pushed = orjson.loads(ws.recv(30))
    assert (pushed["type"], pushed["event"]) == ("alarm", "raised")
    alarm = pushed["alarm"]
    assert (alarm["site"], alarm["device_id"], alarm["rule_id"], alarm["state"]) == (
        unique_id, MEETING, "env.co2_high", "unack")
    assert alarm["value"] > 1000
    assert "ppm" in alarm["message_zh"]

    listed = httpx.get(f"{fmon.base_url}/api/v1/alarms", params={"site": unique_id},
                       headers={"Authorization": f"Bearer {bearer}"}).json()
    assert [a["id"] for a in listed["items"]] == [alarm["id"]]  # only the crowded room

    with fmon.db.session() as session:
        stored = session.get(Alarm, alarm["id"])
        audit = session.scalars(select(AuditEntry).where(
            AuditEntry.entity_type == "alarm", AuditEntry.entity_id == str(alarm["id"]))).all()
    assert stored is not None
    assert stored.state == "unack"
    assert [(a.action, a.actor) for a in audit] == [("alarm.raised", "system")]

    wait_for_readings(fmon, sent)
    assert fmon.ingest.writer.flush(20)
    assert_telemetry_stored(fmon.settings, unique_id, sent)
    assert_dead_lettered(fmon.base_url, unique_id)
    assert_metrics(fmon.base_url, sent)


def assert_metrics(base_url: str, sent: int) -> None:
    text = httpx.get(f"{base_url}/metrics").text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("fmon_")}
    assert values["fmon_ingest_readings_total"] == sent
    assert values["fmon_telemetry_stored_readings_total"] == sent
    assert values['fmon_ingest_dead_letters_total{reason="bad_value"}'] == 1
    assert values["fmon_ingest_dropped_total"] == 0
    assert values["fmon_spool_depth"] == 0


def wait_for_readings(fmon: RunningFmon, count: int, deadline_s: float = 20) -> None:
    deadline = time.monotonic() + deadline_s
    while fmon.ingest.processor.counters.readings < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fmon.ingest.processor.counters.readings >= count


def assert_telemetry_stored(settings: Settings, site: str, sent: int) -> None:
    from core.domain import DeviceRef, Family

    store = open_telemetry_store(settings)
    now = SystemClock().now()
    points = store.query(DeviceRef(site, Family.ENV, MEETING), "co2_ppm", now - timedelta(hours=1), now)
    store.close()
    assert len(points) == sent // 6  # six sensors on the demo site
    assert all(isinstance(p.value, float) and p.value > 1000 for p in points)


def assert_dead_lettered(base_url: str, site: str) -> None:
    """The malformed payload is listed with its reason (polling: it may be in a later batch)."""
    headers = {"Authorization": f"Bearer {token(base_url, 'engineer')}"}
    deadline = time.monotonic() + 20
    items: list[dict[str, Any]] = []
    while not items and time.monotonic() < deadline:
        items = httpx.get(f"{base_url}/api/v1/dead-letters", params={"device": f"{site}/env/env-broken"},
                          headers=headers).json()["items"]
        time.sleep(0.1)
    [letter] = items
    assert letter["reason"] == "bad_value"
    assert "co2_ppm must be a number" in letter["detail"]
    assert letter["payload_excerpt"] == '{"metrics": {"co2_ppm": "lots"}}'



def test_sparkplug_edge_node_raises_the_same_alarm(fmon: RunningFmon, unique_id: str) -> None:
    """A Sparkplug B edge node (NBIRTH, DBIRTH, DDATA by alias) goes through the same pipeline."""
    from core.domain import DeviceRef, Family
    from core.sparkplug import (
        MessageType,
        device_birth,
        device_data,
        device_topic,
        encode_payload,
        metric_defs,
        node_birth,
        node_topic,
    )

    start = SystemClock().now() - timedelta(seconds=120)
    defs = metric_defs(Family.ENV, ["co2_ppm", "temp_c"])
    messages = [
        (node_topic(unique_id, MessageType.NBIRTH, "edge-1"), encode_payload(node_birth(0, timestamp=start))),
        (device_topic(unique_id, MessageType.DBIRTH, "edge-1", "room-9"), encode_payload(device_birth(
            defs, {"co2_ppm": 1250.0, "temp_c": 24.0}, family=Family.ENV, seq=1, timestamp=start))),
    ]
    for step in range(1, 15):
        ts = start + timedelta(seconds=5 * step)
        payload = device_data(defs, {"co2_ppm": 1250.0 + step}, seq=1 + step, timestamp=ts, measured_at=ts)
        messages.append((device_topic(unique_id, MessageType.DDATA, "edge-1", "room-9"), encode_payload(payload)))
    bearer = token(fmon.base_url)
    ws_url = fmon.base_url.replace("http", "ws") + f"/api/v1/stream?token={bearer}"
    with ws_connect(ws_url, open_timeout=10) as ws:
        assert orjson.loads(ws.recv(10)) == {"type": "hello"}
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-{unique_id}")
        host, port = fmon.settings.broker_url.removeprefix("mqtt://").split(":")
        client.connect(host, int(port))
        client.loop_start()
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        pushed = orjson.loads(ws.recv(30))
    assert (pushed["alarm"]["site"], pushed["alarm"]["device_id"], pushed["event"]) == (unique_id, "room-9", "raised")
    wait_for_readings(fmon, 15)  # the alarm came at the 13th reading; the last ones may still be in flight
    assert fmon.ingest.writer.flush(20)
    store = open_telemetry_store(fmon.settings)
    now = SystemClock().now()
    points = store.query(DeviceRef(unique_id, Family.ENV, "room-9"), "co2_ppm", now - timedelta(hours=1), now)
    store.close()
    assert [p.value for p in points] == [1250.0 + step for step in range(15)]


KNOWN = "known-1"  # the one device of the registry the bad-input table sets up


def bad_inputs(site: str) -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected reason): each published to the real broker."""
    now = SystemClock().now()

    def t(n: int, family: str = "env") -> str:
        return f"fmon/v1/{site}/{family}/bad-{n:02d}/telemetry"

    def body(n: int, **fields: Any) -> bytes:
        return orjson.dumps({"metrics": {"co2_ppm": 500}, **fields})

    reading = {"device_id": KNOWN, "family": "env", "metrics": {"co2_ppm": 500}}
    mixed = [reading, {**reading, "metrics": {"co2_ppm": "lots"}}, reading]  # one bad reading of three
    return [
        (t(1), b"{not json", "bad_json"),
        (t(2), b"[1, 2, 3]", "bad_json"),
        (t(3), b'{"metrics": {"co2_ppm": 500}, "note": "\xff\xfe"}', "bad_encoding"),
        (t(4), b'{"metrics": {"co2_ppm": NaN}}', "not_finite"),
        (t(5), b'{"metrics": {"co2_ppm": 1e999}}', "not_finite"),
        (t(6), orjson.dumps({"metrics": {"co2_ppm": "high"}}), "bad_value"),
        (t(7), orjson.dumps({"metrics": {"co2_ppm": True}}), "bad_value"),
        (t(8), orjson.dumps({"metrics": {"co2_ppm": -5}}), "bad_value"),
        (t(9), orjson.dumps({"metrics": {"radon_bq": 10}}), "unknown_metric"),
        (t(10), body(10, events=[{"code": "cover_open"}]), "unknown_event"),
        (t(11), orjson.dumps({"seq": 1}), "missing_metrics"),
        (t(12), body(12, ts=(now + timedelta(days=2)).isoformat()), "future_timestamp"),
        (t(13), body(13, ts="2001-09-09T01:46:40Z"), "ancient_timestamp"),
        (t(14), body(14, ts="last tuesday"), "bad_timestamp"),
        (t(15), body(15, seq=-3), "bad_seq"),
        (t(16), body(16, historical="yes"), "bad_historical"),
        (t(17), b'{"metrics": {"co2_ppm": 500}, "pad": "' + b"x" * 300_000 + b'"}', "oversized"),
        (f"fmon/v1/{site}/gateway/gw-big/batch", orjson.dumps({"readings": [reading] * 1001}), "oversized"),
        (f"fmon/v1/{site}/gateway/gw-bad/batch", orjson.dumps({"readings": [{"family": "lift"}]}), "bad_batch"),
        (f"fmon/v1/{site}/gateway/gw-mixed/batch", orjson.dumps({"readings": mixed}), "bad_value"),
        (f"fmon/v1/{site}/kitchen/bad-20/telemetry", body(20), "unknown_family"),
        (f"fmon/v1/{site}/env/bad'21;DROP/telemetry", body(21), "bad_id"),
        (f"fmon/v1/{site}/env/bad 22\"x/telemetry", body(22), "bad_id"),
        (f"fmon/v1/{site}/gateway/gw-23/status", b"maybe", "bad_status"),
        (f"fmon/v1/{site}/env/bad-24/telemetry/extra", body(24), "bad_topic"),
        (t(25), b'{"metrics": {"co2_ppm": -Infinity}}', "not_finite"),
        (t(26), orjson.dumps({"metrics": {"co2_ppm": 500}, "events": [{"code": "sensor_fault", "x": [1]}]}),
         "bad_events"),
        (t(27), body(27), "unknown_device"),  # valid, but not in the registry
        (f"fmon/v1/{site}x/env/{KNOWN}/telemetry", body(28), "unknown_site"),  # a known device, wrong site
    ]


def register_one_device(fmon: RunningFmon, site: str) -> None:
    """A registry with one site (no auto-registration) and one device, picked up by ingest at once."""
    from core.domain import Family
    from storage.state.registry import DeviceSpec, Inventory, RegistryStore, SiteSpec

    inventory = Inventory("test", sites=(SiteSpec(site),), devices=(DeviceSpec(site, Family.ENV, KNOWN),))
    RegistryStore(fmon.db).apply(inventory, SystemClock().now())
    fmon.ingest.registry_sync(force=True)


def publish_all(broker_url: str, client_id: str, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    host, port = broker_url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_every_bad_input_is_dead_lettered_with_its_reason(fmon: RunningFmon, unique_id: str) -> None:
    register_one_device(fmon, unique_id)
    inputs = bad_inputs(unique_id)
    publish_all(fmon.settings.broker_url, f"bad-{unique_id}", [(topic, payload) for topic, payload, _ in inputs])
    headers = {"Authorization": f"Bearer {token(fmon.base_url, 'engineer')}"}
    expected = {topic: reason for topic, _, reason in inputs}
    found: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while len(found) < len(expected) and time.monotonic() < deadline:
        items = httpx.get(f"{fmon.base_url}/api/v1/dead-letters", params={"limit": 1000}, headers=headers).json()
        found = {i["topic"]: i["reason"] for i in items["items"] if i["topic"] in expected}
        time.sleep(0.2)
    assert found == expected
    assert len(set(expected.values())) >= 20  # each kind of bad input has a reason of its own
    assert fmon.ingest.consumer.connected.is_set()  # nothing crashed the consumer
    # the good readings of the mixed batch were kept; its bad one is counted against its device
    wait_for_readings(fmon, 2)
    assert fmon.ingest.processor.counters.rejected_by_device[f"{unique_id}/env/{KNOWN}"] == 1


def test_registry_refuses_unknown_devices_and_sites(fmon: RunningFmon, unique_id: str) -> None:
    from core.domain import Family
    from storage.state.registry import DeviceSpec, Inventory, RegistryStore, SiteSpec

    inventory = Inventory("test", sites=(SiteSpec(unique_id),),
                          devices=(DeviceSpec(unique_id, Family.ENV, "known-1"),))
    RegistryStore(fmon.db).apply(inventory, SystemClock().now())
    fmon.ingest.registry_sync(force=True)
    body = orjson.dumps({"metrics": {"co2_ppm": 600}})
    unknown = f"fmon/v1/{unique_id}/env/stranger-1/telemetry"
    elsewhere = f"fmon/v1/{unique_id}x/env/known-1/telemetry"
    publish_site(fmon.settings, unique_id, [(f"fmon/v1/{unique_id}/env/known-1/telemetry", body),
                                            (unknown, body), (elsewhere, body)])
    headers = {"Authorization": f"Bearer {token(fmon.base_url, 'engineer')}"}
    expected = {unknown: "unknown_device", elsewhere: "unknown_site"}
    found: dict[str, str] = {}
    deadline = time.monotonic() + 20
    while found != expected and time.monotonic() < deadline:
        items = httpx.get(f"{fmon.base_url}/api/v1/dead-letters", params={"limit": 1000}, headers=headers).json()
        found = {i["topic"]: i["reason"] for i in items["items"] if i["topic"] in expected}
        time.sleep(0.2)
    assert found == expected
    # publish_site also sent the demo sensors of this site, none of them in the registry
    assert fmon.ingest.processor.counters.readings == 1  # known-1 only
    assert fmon.ingest.processor.counters.rejected["unknown_site"] == 1


def test_every_family_round_trips_to_the_store(fmon: RunningFmon, unique_id: str) -> None:
    """One reading per family with every metric of the schema and an event, published, stored,
    read back; and an event-only message of the fire panel (two point events in one message)."""
    from core.domain import DeviceRef, Family
    from core.schema import FAMILY_METRICS, MetricSpec

    def value(spec: MetricSpec, family: Family) -> Any:
        if spec.type == "boolean":
            return True
        if spec.type == "enum":
            return spec.choices[1]
        low, high = spec.minimum or 0.0, spec.maximum if spec.maximum is not None else 100.0
        middle = low + (high - low) * 0.37
        return int(middle) if spec.type == "integer" else round(middle, 3)

    ts = SystemClock().now().replace(microsecond=0) - timedelta(minutes=5)
    sent = {family: {s.name: value(s, family) for s in FAMILY_METRICS[family]} for family in Family}
    messages = [(f"fmon/v1/{unique_id}/{family.value}/rt-{family.value}/telemetry",
                 orjson.dumps({"ts": ts.isoformat(), "seq": 1, "metrics": metrics, "events": [EVENTS[family]]}))
                for family, metrics in sent.items()]
    later = ts + timedelta(seconds=30)
    points = [{"code": "point_fire", **POINT}, {"code": "point_fire", **POINT, "address": 24, "component_type": 30}]
    messages.append((f"fmon/v1/{unique_id}/fire_panel/rt-fire_panel/telemetry",
                     orjson.dumps({"ts": later.isoformat(), "seq": 2, "events": points})))
    publish_all(fmon.settings.broker_url, f"rt-{unique_id}", messages)
    wait_for_readings(fmon, len(messages))
    assert fmon.ingest.writer.flush(20)
    store = open_telemetry_store(fmon.settings)
    try:
        for family, metrics in sent.items():
            device = DeviceRef(unique_id, family, f"rt-{family.value}")
            for name, expected in metrics.items():
                stored = store.query(device, name, ts - timedelta(seconds=1), ts + timedelta(seconds=1))
                assert [(p.ts, p.value) for p in stored] == [(ts, expected)], f"{family.value}.{name}"
            events = store.events(device, ts, ts + timedelta(seconds=1))
            attrs = dict(EVENTS[family])
            code = attrs.pop("code")
            assert [(e.ts, e.code, dict(e.attrs)) for e in events] == [(ts, code, attrs)], family.value
        panel = store.events(DeviceRef(unique_id, Family.FIRE_PANEL, "rt-fire_panel"), later, later + timedelta(1))
        assert [(e.ts, e.index, e.attrs["address"], e.attrs["component_type"]) for e in panel] == [
            (later, 0, 23, 40), (later, 1, 24, 30)]
    finally:
        store.close()


POINT = {"loop": 1, "address": 23, "zone": "B1-F3", "component_type": 40, "description": "3F corridor smoke"}
EVENTS: dict[Any, dict[str, Any]] = {  # one event per family, with attributes where the family has them
    "meter": {"code": "cover_open"},
    "elevator": {"code": "door_reopen", "floor": -2},
    "fire_panel": {"code": "point_fire", **POINT},
    "gas": {"code": "power_fault"},
    "env": {"code": "sensor_fault"},
    "pump": {"code": "trip"},
}


SCENARIO_PLAYBOOKS = {"gas-leak-canteen": "gas-leak", "elevator-entrapment": "elevator-entrapment",
                      "fire-b1-f3": "fire"}
SCENARIO_ALARMS = {
    # scenario: (simulated duration, {(rule, device): grade} expected on the scenario's devices)
    # Level 1 only: from level 1 on, fmon's gas-leak playbook starts the exhaust fan (grade 3 command,
    # no confirmation), which dilutes the leak below level 2 (tests/test_playbook_mqtt.py plays on).
    "gas-leak-canteen": ("9m", {("gas.lel_l1", "gd-b2-canteen"): 3}),
    "elevator-entrapment": ("3m", {("elevator.entrapment", "el-b2-1"): 2, ("elevator.alarm_button", "el-b2-1"): 3}),
    "fire-b1-f3": ("4m", {("fire.alarm_unconfirmed", "fp-b1"): 3, ("fire.alarm_confirmed", "fp-b1"): 1}),
}


@pytest.mark.parametrize("scenario", list(SCENARIO_ALARMS))
def test_scenarios_through_the_real_pipeline(fmon_real: RunningFmon, unique_id: str, scenario: str) -> None:
    """`fmon simulate run --scenario` (accelerated 120x) against Mosquitto: the scenario's devices
    raise exactly their signature alarms, and nothing anywhere is an emergency it should not be.

    Mosquitto only: once, under full-suite load, the embedded amqtt broker run missed the second
    detector of the fire scenario (not reproduced in isolation); see the session note."""
    fmon = fmon_real
    import subprocess
    import sys

    duration, expected = SCENARIO_ALARMS[scenario]
    fmon_cmd = str(Path(sys.executable).parent / "fmon")
    subprocess.run([fmon_cmd, "simulate", "run", "--broker", fmon.settings.broker_url, "--site", unique_id,
                    "--scenario", scenario, "--speed", "120", "--duration", duration],
                   check=True, capture_output=True, timeout=120)
    wanted_devices = {device for _, device in expected}
    deadline = time.monotonic() + 30
    found: dict[tuple[str, str], int] = {}
    while time.monotonic() < deadline:
        with fmon.db.session() as session:
            rows = session.scalars(select(Alarm).where(Alarm.site == unique_id)).all()
        found = {(a.rule_id, a.device_id): a.grade for a in rows if a.device_id in wanted_devices}
        if found == expected:
            break
        time.sleep(0.2)
    assert found == expected
    emergencies = {(a.rule_id, a.device_id) for a in rows if a.grade <= 2} - set(expected)
    assert emergencies == set()
    with fmon.db.session() as session:  # the alarms opened their incident's emergency playbook
        runs = session.scalars(select(PlaybookRun.playbook_key).join(Incident, Incident.id == PlaybookRun.incident_id)
                               .where(Incident.site == unique_id)).all()
    assert SCENARIO_PLAYBOOKS[scenario] in runs


class SmallQueueMosquitto(MosquittoServer):
    """A broker that keeps at most 5 messages for a session that is away, and updates $SYS every second."""

    def _config_text(self) -> str:
        return super()._config_text() + "max_queued_messages 5\nsys_interval 1\n"


def test_the_brokers_own_drops_are_exported() -> None:
    """Messages Mosquitto drops never reach fmon; its `$SYS` counter is on fmon's /metrics."""
    from prometheus_client import CollectorRegistry, generate_latest

    from core.broker import BrokerAddress
    from runtime.broker_stats import BrokerDrops

    with SmallQueueMosquitto() as broker:
        drops = BrokerDrops(BrokerAddress.parse(broker.url), "drops-test")
        registry = CollectorRegistry()
        registry.register(drops)
        drops.start()
        try:
            assert drops.updated.wait(10)
            assert drops.dropped == 0
            away_session(broker)
            publish_all(broker.url, "drops-pub",
                        [("drop-test/x", b"%d" % i) for i in range(20)])
            for _ in range(20):  # $SYS comes every second: wait for the count that includes them
                if drops.dropped:
                    break
                drops.updated.clear()
                assert drops.updated.wait(10)
            assert drops.dropped == 15  # 5 kept for the session, 15 dropped
            assert b"fmon_broker_messages_dropped_total 15.0" in generate_latest(registry)
        finally:
            drops.stop()


def away_session(broker: MosquittoServer) -> None:
    """A persistent session subscribed at QoS 1 whose client is gone: the broker queues for it."""
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="away-session", clean_session=False)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.subscribe("drop-test/#", qos=1)
    assert subscribed.wait(10)
    client.disconnect()
    client.loop_stop()
