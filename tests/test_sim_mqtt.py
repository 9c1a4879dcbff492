"""Simulated gateways against a real Mosquitto: the Will, store-and-forward, commands, the CLI,
and a broker with a password file and an ACL: credentials in the URL log in, a refused login is
reported as such (never buffered forever, never "not acknowledged").

Each test uses its own site id (`unique_id`), so topics never collide. Waits poll with a
deadline; no sleep is an assertion.
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from core.broker import BrokerAddress
from core.clock import SystemClock
from core.domain import DeviceRef, Family, Reading
from core.topics import command_topic, gateway_status_topic
from runtime.simulate_cli import simulate
from simulators.gateway import GatewayLink
from simulators.load import LoadSpec, run_load
from simulators.mqtt_transport import BrokerRefused, MqttTransport
from simulators.runner import RunnerOptions, SiteRunner, mqtt_connect
from simulators.scenario import bind, load_scenario, scenario_path
from simulators.site import demo_estate
from simulators.timebase import accelerated_start
from tests.harness import MosquittoServer, ServiceUnavailable
from tests.harness.policy import service_unavailable

FMON = str(Path(sys.executable).parent / "fmon")


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return orjson.loads(self.payload)


class Subscriber:
    """A plain MQTT client standing in for fmon: collects what arrives on `topic_filter`."""

    def __init__(self, broker: MosquittoServer, topic_filter: str, login: tuple[str, str] | None = None) -> None:
        self.messages: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._ready = queue.SimpleQueue[bool]()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.on_message = lambda _c, _u, m: self.messages.put(Message(m.topic, bytes(m.payload), m.retain))
        self.client.on_subscribe = lambda *_args: self._ready.put(True)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(topic_filter, qos=1)
        assert self._ready.get(timeout=10)

    def wait_for(self, match: Callable[[Message], bool], timeout: float = 10) -> Message:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if match(message):
                return message
        raise AssertionError("expected message did not arrive in time")

    def next(self, timeout: float = 10) -> Message:
        return self.wait_for(lambda _m: True, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribers(mosquitto: MosquittoServer) -> Iterator[Callable[[str], Subscriber]]:
    made: list[Subscriber] = []

    def make(topic_filter: str) -> Subscriber:
        made.append(Subscriber(mosquitto, topic_filter))
        return made[-1]

    yield make
    for subscriber in made:
        subscriber.close()


def retained(subscribers: Callable[[str], Subscriber], topic: str, expected: bytes) -> None:
    """Subscribe afterwards, as a late fmon would, until the retained value is `expected`."""
    deadline = time.monotonic() + 10
    seen = None
    while time.monotonic() < deadline:
        seen = subscribers(topic).wait_for(lambda m: m.retain).payload
        if seen == expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"retained {topic} is {seen!r}, expected {expected!r}")


def reports(device_id: str, **values: Any) -> Callable[[Message], bool]:
    """Matches a telemetry message of `device_id` whose metrics have these values."""
    def match(message: Message) -> bool:
        metrics = message.json()["metrics"]
        return f"/{device_id}/telemetry" in message.topic and all(metrics.get(k) == v for k, v in values.items())
    return match


def reading(site: str, seq: int) -> Reading:
    ts = datetime(2026, 3, 2, 1, 0, tzinfo=UTC) + timedelta(seconds=seq)
    return Reading(DeviceRef(site, Family.ENV, "env-1"), ts, {"co2_ppm": 400.0 + seq}, seq)


def test_a_cut_gateway_leaves_offline_through_its_will_then_replays_as_historical(
    mosquitto: MosquittoServer, unique_id: str, subscribers: Callable[[str], Subscriber]
) -> None:
    status = gateway_status_topic(unique_id, "gw-1")
    transport = MqttTransport(BrokerAddress.parse(mosquitto.url), unique_id, "gw-1")
    transport.start()
    assert transport.wait_connected(10)
    link = GatewayLink(unique_id, "gw-1", transport)
    retained(subscribers, status, b"online")
    telemetry = subscribers(f"fmon/v1/{unique_id}/env/+/telemetry")

    link.send([reading(unique_id, 1)])
    assert telemetry.next().json()["seq"] == 1

    transport.cut()  # the socket closes without DISCONNECT: the broker publishes the Will
    retained(subscribers, status, b"offline")
    link.send([reading(unique_id, 2), reading(unique_id, 3)])
    assert link.buffered == 2

    transport.restore()
    assert transport.wait_connected(10)
    retained(subscribers, status, b"online")
    link.send([reading(unique_id, 4)])
    bodies = [telemetry.next().json() for _ in range(3)]
    assert [(b["seq"], b.get("historical", False)) for b in bodies] == [(2, True), (3, True), (4, False)]
    assert link.stats.replayed == 2 and link.buffered == 0

    transport.close()  # a clean stop announces offline itself
    retained(subscribers, status, b"offline")


def test_simulated_devices_obey_commands_acknowledge_them_and_report_the_new_state(
    mosquitto: MosquittoServer, unique_id: str, subscribers: Callable[[str], Subscriber]
) -> None:
    site = demo_estate(unique_id, seed=1, interval_s=2.0).only(["gd-b2-canteen", "el-b2-1", "em-b2-main"])
    acks = subscribers(f"fmon/v1/{unique_id}/+/+/command/ack")
    telemetry = subscribers(f"fmon/v1/{unique_id}/+/+/telemetry")
    # 20x from ten minutes ago: a recalled car's trip of up to 35 s takes under 2 s of the test.
    options = RunnerOptions(speed=20, start=datetime.now(UTC) - timedelta(minutes=10))
    runner = SiteRunner(site, mqtt_connect(BrokerAddress.parse(mosquitto.url), unique_id), SystemClock(),
                        options=options)
    assert runner.start()
    fmon = subscribers(f"fmon/v1/{unique_id}/nothing")  # a client to publish commands with
    try:
        def send(device_id: str, body: Any) -> dict[str, Any]:
            device = site.device(device_id).ref
            fmon.client.publish(command_topic(device), body if isinstance(body, bytes) else orjson.dumps(body), qos=1)
            ack = acks.wait_for(lambda m: m.topic == command_topic(device) + "/ack")
            answer: dict[str, Any] = ack.json()
            return answer

        assert send("gd-b2-canteen", {"id": "c1", "command": "close_valve"}) == {"id": "c1", "status": "done"}
        gas = telemetry.wait_for(reports("gd-b2-canteen", valve="closed"), timeout=5)
        assert gas.json()["metrics"]["fan"] is False

        assert send("el-b2-1", {"id": "c2", "command": "recall", "args": {"floor": 1}})["status"] == "done"
        lift = telemetry.wait_for(reports("el-b2-1", service_mode="fire"))
        assert any(e["code"] == "fire_recall" for e in lift.json().get("events", []))
        telemetry.wait_for(reports("el-b2-1", floor=1, door="open"), timeout=10)

        refused = send("em-b2-main", {"id": "c3", "command": "close_valve"})
        assert refused["status"] == "rejected" and "relay, not a valve" in refused["reason"]
        unknown = send("el-b2-1", {"id": "c4", "command": "self_destruct"})
        assert unknown["status"] == "rejected" and "recall" in unknown["reason"]
        assert send("gd-b2-canteen", b"not json")["status"] == "rejected"
        assert send("gd-b2-canteen", {"id": "c1", "command": "open_valve"}) == {"id": "c1", "status": "done"}, \
            "a repeated id is answered again, not carried out twice"
    finally:
        runner.stop()
    retained(subscribers, gateway_status_topic(unique_id, "gw-b2"), b"offline")


def test_fmon_simulate_run_plays_a_scenario_accelerated_with_past_timestamps(
    mosquitto: MosquittoServer, unique_id: str, subscribers: Callable[[str], Subscriber]
) -> None:
    gas = subscribers(f"fmon/v1/{unique_id}/gas/gd-b2-canteen/telemetry")
    started = datetime.now(UTC)
    result = subprocess.run(
        [FMON, "simulate", "run", "--broker", mosquitto.url, "--site", unique_id, "--seed", "3",
         "--scenario", "gas-leak-canteen", "--speed", "300", "--duration", "10m"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "playing gas-leak-canteen" in result.stdout and "gw-b2:" in result.stdout
    bodies = []
    while True:
        try:
            bodies.append(gas.next(timeout=1).json())
        except AssertionError:
            break
    stamps = [datetime.fromisoformat(b["ts"].replace("Z", "+00:00")) for b in bodies]
    assert len(bodies) >= 8  # one a minute
    assert max(stamps) <= datetime.now(UTC)  # accelerated time never runs ahead of the real clock
    assert min(stamps) < started - timedelta(minutes=9)  # it replayed the recent past
    first_25 = next(ts for ts, b in zip(stamps, bodies, strict=True) if b["metrics"]["lel_pct"] >= 25)
    assert abs(first_25 - stamps[0] - timedelta(minutes=7)) <= timedelta(minutes=1)


class MosquittoOnPort(MosquittoServer):
    """A Mosquitto started on a given port: the same broker address again after an outage."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self._wanted = port

    def _configure(self, workdir: Path) -> list[str]:
        argv = super()._configure(workdir)
        self._port = self._wanted
        (workdir / "mosquitto.conf").write_text(self._config_text())
        return argv


def test_readings_taken_during_a_broker_outage_are_replayed_as_historical(unique_id: str) -> None:
    first = MosquittoServer()
    first.start()
    site = demo_estate(unique_id, interval_s=0.25).only(["env-b1-f2-meeting"])
    address = BrokerAddress.parse(first.url)
    # Retry every 3 s, so the watcher below subscribes to the new broker before the gateway is back.
    runner = SiteRunner(site, lambda gw, on_command: MqttTransport(address, unique_id, gw, on_command=on_command,
                                                                  reconnect_delay=(3, 3)), SystemClock())
    second: MosquittoServer | None = None
    try:
        assert runner.start()
        link = runner.links["gw-b1"]
        wait_until(lambda: link.stats.live >= 2)
        first.stop()  # the broker goes away: the gateway keeps reading its devices
        wait_until(lambda: link.buffered >= 4)
        second = MosquittoOnPort(first.port)
        second.start()
        watcher = Subscriber(second, f"fmon/v1/{unique_id}/env/+/telemetry")
        try:
            bodies = [watcher.next(timeout=40).json() for _ in range(link.buffered + 2)]
        finally:
            watcher.close()
        replayed = [b for b in bodies if b.get("historical")]
        assert len(replayed) >= 4
        assert bodies[: len(replayed)] == replayed  # the backlog first, in order, then live readings
        assert [b["seq"] for b in bodies] == list(range(bodies[0]["seq"], bodies[0]["seq"] + len(bodies)))
    finally:
        runner.stop()
        for broker in (first, second):
            if broker is not None:
                broker.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_the_gateway_offline_scenario_leaves_offline_through_the_will_then_online_and_replays(
    mosquitto: MosquittoServer, unique_id: str, subscribers: Callable[[str], Subscriber]
) -> None:
    """gateway-offline-b2 through the SiteRunner at 120x: gw-b2 drops at 5 min (2.5 s) for 10 min (5 s)."""
    site = demo_estate(unique_id, seed=1).only(["el-b2-1", "gd-b2-canteen", "env-b1-f1-lobby"])
    bound = bind(load_scenario(scenario_path("gateway-offline-b2")), site)
    status_topic = gateway_status_topic(unique_id, "gw-b2")
    status = subscribers(status_topic)
    lift = subscribers(f"fmon/v1/{unique_id}/elevator/el-b2-1/telemetry")
    horizon = timedelta(minutes=16)
    options = RunnerOptions(speed=120, start=accelerated_start(datetime.now(UTC), horizon, 120), duration=horizon)
    runner = SiteRunner(site, mqtt_connect(BrokerAddress.parse(mosquitto.url), unique_id), SystemClock(),
                        steps=bound.steps, options=options)
    try:
        assert runner.start()
        status.wait_for(lambda m: m.payload == b"online")
        status.wait_for(lambda m: m.payload == b"offline")  # the Will: the link dropped without DISCONNECT
        retained(subscribers, status_topic, b"offline")  # what a fmon that (re)subscribes now reads
        assert runner.links["gw-b2"].stats.replayed == 0 and runner.links["gw-b1"].transport.connected
        status.wait_for(lambda m: m.payload == b"online", timeout=20)
        retained(subscribers, status_topic, b"online")
        replayed = lift.wait_for(lambda m: m.json().get("historical") is True, timeout=10)
        assert replayed.json()["seq"] > 1
    finally:
        runner.stop()
    assert runner.links["gw-b2"].stats.replayed >= 15  # ~20 lift readings (every 30 s) and the gas detector's


# --- a broker with a password file and an ACL ----------------------------------------------------

GATEWAY = ("gw-sim", "s3cret:/@pw")  # characters a URL must percent-encode
READER = ("fmon-reader", "reader-pw")
ACL = f"""\
user {GATEWAY[0]}
topic readwrite fmon/v1/#
user {READER[0]}
topic read fmon/v1/#
"""
REFUSED = re.compile(r"broker refused the connection: (not authorised|bad user name or password)")


@pytest.fixture(scope="module")
def secured() -> Iterator[MosquittoServer]:
    """A Mosquitto that lets in only the gateway and the reader, each to its topics."""
    server = MosquittoServer(users=dict([GATEWAY, READER]), acl=ACL)
    try:
        server.start()
    except ServiceUnavailable as exc:
        service_unavailable(exc)
    yield server
    server.stop()


def broker_url(broker: MosquittoServer, user: str, password: str) -> str:
    return f"mqtt://{quote(user, safe='')}:{quote(password, safe='')}@{broker.host}:{broker.port}"


def test_the_simulator_logs_in_with_the_credentials_of_its_url_and_its_data_arrives(
        secured: MosquittoServer, unique_id: str) -> None:
    telemetry = Subscriber(secured, f"fmon/v1/{unique_id}/+/+/telemetry", login=READER)
    site = demo_estate(unique_id, interval_s=0.5).only(["env-b1-f2-meeting"])
    runner = SiteRunner(site, mqtt_connect(BrokerAddress.parse(broker_url(secured, *GATEWAY)), unique_id),
                        SystemClock())
    try:
        assert runner.start()
        first, second = telemetry.next(), telemetry.next()
    finally:
        runner.stop()
        telemetry.close()
    assert "/env/env-b1-f2-meeting/telemetry" in first.topic
    assert second.json()["seq"] == first.json()["seq"] + 1


@pytest.mark.parametrize("login", [(GATEWAY[0], "wrong"), ("nobody", "x")], ids=["bad password", "unknown user"])
def test_a_refused_login_is_reported_as_such_by_the_load_generator(secured: MosquittoServer,
                                                                   login: tuple[str, str]) -> None:
    address = BrokerAddress.parse(broker_url(secured, *login))
    with pytest.raises(BrokerRefused, match=REFUSED):
        run_load(address, LoadSpec(devices=1, rate=10, duration_s=0.5))
    run = CliRunner().invoke(simulate, ["load", "--broker", broker_url(secured, *login),
                                        "--rate", "10", "--duration", "0.5"])
    assert run.exit_code == 1 and REFUSED.search(run.stderr), run.output
    assert "not acknowledged" not in run.output


def test_fmon_simulate_run_exits_1_when_the_broker_refuses_the_login(secured: MosquittoServer, unique_id: str) -> None:
    run = CliRunner().invoke(simulate, ["run", "--broker", broker_url(secured, GATEWAY[0], "wrong"),
                                        "--site", unique_id, "--duration", "1m"])
    assert run.exit_code == 1
    assert REFUSED.search(run.stderr), run.output
    assert "buffering" not in run.output
