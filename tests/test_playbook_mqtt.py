"""Playbook device commands against a real Mosquitto.

1. The gas-leak scenario (docs/scenarios/gas-leak-canteen.yaml) plays accelerated through the
   simulator and the whole of fmon (ingest, rules, alarms, playbooks, API, stream): the incident
   runs the gas-leak playbook, the exhaust fan is started by itself (grade 3), the shut-off valve
   waits for the operator; confirmed through the API, `close_valve` goes to the simulated
   detector, which acknowledges and reports `valve: closed`: the step is done.
2. A command to a device nobody simulates: published on the real broker, never acknowledged;
   with a fake clock past the ack timeout the step fails and the failure reaches a real webhook
   through the alarm notifiers.

Polling with deadlines waits for real network effects; timing assertions use the fake clock.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from websockets.sync.client import connect as ws_connect

from alarms.notify.config import parse_notify_config
from alarms.notify.setup import build_notifications
from core.broker import BrokerAddress
from core.clock import FakeClock, SystemClock
from core.settings import load_settings
from playbooks.actions import StartRequest
from playbooks.notify import PREFIXES, StepNotifier, StepSubjects
from playbooks.scheduler import PlaybookScheduler
from runtime.commands import MqttCommandLink
from simulators.runner import RunnerOptions, SiteRunner, mqtt_connect
from simulators.scenario import bind, load_scenario, scenario_path
from simulators.site import demo_estate
from simulators.timebase import accelerated_start
from storage.state.database import StateDatabase
from tests.harness import MosquittoServer
from tests.harness.process import free_port
from tests.test_end_to_end import RunningFmon, _running, token
from tests.test_inhibit import T0
from tests.test_notify_acceptance import Receivers
from tests.test_playbook_runs import Estate

SPEED = 60.0
REPLAY = timedelta(minutes=20)  # of the scenario, replayed at SPEED; then it runs in real time


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll `probe` until it returns something truthy (bounded: real network effects)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.fixture
def fmon(mosquitto: MosquittoServer, tmp_path: Path, unique_id: str) -> Iterator[RunningFmon]:
    settings = load_settings(environment="demo", broker_url=mosquitto.url, data_dir=tmp_path, api_port=free_port(),
                             ingest_flush_seconds=0.05, rule_tick_seconds=0.2, ingest_client_id=f"fmon-{unique_id}")
    yield from _running(settings)


def test_gas_leak_scenario_closes_the_valve_through_the_real_pipeline(fmon: RunningFmon, unique_id: str) -> None:
    base, bearer = fmon.base_url, token(fmon.base_url)
    headers = {"Authorization": f"Bearer {bearer}"}
    estate = demo_estate(unique_id, seed=1)
    bound = bind(load_scenario(scenario_path("gas-leak-canteen")), estate)
    behind = {d.ref.device_id for gw in bound.gateways for d in estate.on_gateway(gw)}
    site = estate.only(bound.devices | behind)
    options = RunnerOptions(speed=SPEED, start=accelerated_start(SystemClock().now(), REPLAY, SPEED))
    runner = SiteRunner(site, mqtt_connect(BrokerAddress.parse(fmon.settings.broker_url), unique_id), SystemClock(),
                        steps=bound.steps, options=options)
    events: list[dict[str, Any]] = []
    with ws_connect(base.replace("http", "ws") + f"/api/v1/stream?token={bearer}", open_timeout=10) as ws:
        assert orjson.loads(ws.recv(10)) == {"type": "hello"}
        assert runner.start()
        try:
            incident = wait_for("an incident waiting to close the valve",
                                lambda: _with_step(base, headers, unique_id, "close-valve", "awaiting_confirmation"))
            assert incident["run"]["playbook"] == "gas-leak"
            assert incident["run"]["source_device"] == f"{unique_id}/gas/gd-b2-canteen"
            _wait_done(base, headers, incident["id"], "start-fan")  # grade 3 started the fan by itself
            confirm = httpx.post(f"{base}/api/v1/incidents/{incident['id']}/steps/close-valve/complete",
                                 json={"confirm": True}, headers=headers)
            assert confirm.status_code == 200, confirm.text
            step = _wait_done(base, headers, incident["id"], "close-valve")
            assert runner.site.device("gd-b2-canteen").model.valve_open is False  # type: ignore[attr-defined]
        finally:
            runner.stop()
        events = _drain(ws, until=lambda e: e.get("step", {}).get("step_id") == "close-valve"
                        and e["step"]["status"] == "done")
    [command] = step["commands"]
    assert (command["name"], command["device"], command["state"]) == ("close_valve",
                                                                       f"{unique_id}/gas/gd-b2-canteen", "done")
    assert command["ack_status"] == "done" and command["readback_value"] == {"valve": "closed"}
    assert step["confirmed_by"] == "operator" and step["done_by"] == "system"
    incident_events = [e for e in events if e["type"] == "incident" and e["incident"]["id"] == incident["id"]]
    assert incident_events[0]["event"] == "incident.opened"  # through the internal bus to the browser
    assert any(e["event"] == "step.updated" and e["step"]["step_id"] == "close-valve" for e in incident_events)


def _with_step(base: str, headers: dict[str, str], site: str, step_id: str, status: str) -> dict[str, Any] | None:
    listed = httpx.get(f"{base}/api/v1/incidents", params={"site": site, "playbook": "gas-leak"},
                       headers=headers).json()["items"]
    for item in listed:
        detail = httpx.get(f"{base}/api/v1/incidents/{item['id']}", headers=headers).json()
        if any(s["step_id"] == step_id and s["status"] == status for s in detail["run"]["steps"]):
            return dict(detail)
    return None


def _wait_done(base: str, headers: dict[str, str], incident_id: int, step_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        detail = httpx.get(f"{base}/api/v1/incidents/{incident_id}", headers=headers).json()
        step = next(s for s in detail["run"]["steps"] if s["step_id"] == step_id)
        assert step["status"] != "failed", step
        return dict(step) if step["status"] == "done" else None

    return dict(wait_for(f"step {step_id} done", done))


def _drain(ws: Any, until: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = orjson.loads(ws.recv(max(deadline - time.monotonic(), 0.1)))
        received.append(message)
        if message.get("type") == "incident" and until(message):
            return received
    raise AssertionError(f"no such event among {len(received)} received")


# --- a device that never answers -----------------------------------------------------------------

NOTIFY = """
console_url: http://console.test
delivery: {{max_attempts: 2, timeout: 3s}}
receivers:
  - {{name: control-room, channel: webhook, url: "{http}/webhook/control-room", secret: cr-secret}}
defaults:
  roster:
    tier_1: [{{receivers: [control-room]}}]
"""


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    server = Receivers()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def command_probe(mosquitto: MosquittoServer, unique_id: str) -> Iterator[queue.Queue[tuple[str, bytes]]]:
    """A subscriber to the site's command topics (what a gateway would hear)."""
    heard: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{unique_id}")
    client.on_message = lambda _c, _u, message: heard.put((message.topic, bytes(message.payload)))
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    client.subscribe(f"fmon/v1/{unique_id}/+/+/command", qos=1)[0]
    time.sleep(0.3)  # the SUBACK; the probe only listens
    yield heard
    client.disconnect()
    client.loop_stop()


@pytest.mark.parametrize("state_db", ["sqlite"], indirect=True)
def test_a_device_that_never_answers_fails_the_step_and_escalates(
        state_db: StateDatabase, mosquitto: MosquittoServer, unique_id: str, receivers: Receivers,
        command_probe: queue.Queue[tuple[str, bytes]]) -> None:
    clock = FakeClock(T0)
    estate = Estate(state_db, clock=clock)
    notifications = build_notifications(parse_notify_config(NOTIFY.format(http=receivers.base_url)), state_db, clock)
    for prefix in PREFIXES:
        notifications.dispatcher.subjects[prefix] = StepSubjects(state_db, notifications.router)
    acks: list[PlaybookScheduler] = []
    link = MqttCommandLink(BrokerAddress.parse(mosquitto.url), f"cmd-{unique_id}", lambda a: acks[0].on_ack(a),
                           unique_id)
    scheduler = PlaybookScheduler(state_db, sender=link, notifier=StepNotifier(notifications.router,
                                                                               notifications.log))
    acks.append(scheduler)
    link.start()
    try:
        assert link.connected.wait(10)
        incident = estate.actions.start("op1", StartRequest("gas-leak", unique_id, 1, device="gas/gd-ghost"))
        estate.actions.complete(incident["id"], "close-valve", "op1", confirm=True)
        scheduler.run(clock.now())
        topic, payload = command_probe.get(timeout=10)
        body = orjson.loads(payload)
        assert topic == f"fmon/v1/{unique_id}/gas/gd-ghost/command"
        assert (body["command"], body["args"]) == ("close_valve", {}) and body["id"].startswith("fmon-")

        clock.advance(29)
        scheduler.run(clock.now())
        assert estate.steps(incident["id"])["close-valve"]["status"] == "in_progress"
        clock.advance(1)
        scheduler.run(clock.now())
        step = estate.steps(incident["id"])["close-valve"]
        assert step["status"] == "failed" and "no acknowledgement" in step["status_reason"]
        outcomes = notifications.dispatcher.run(clock.now())
    finally:
        link.stop()
    failed = [o for o in outcomes if o.reason.startswith("step-failed")]
    assert [(o.receiver, o.status.value) for o in failed] == [("control-room", "sent")]
    [request] = [r for r in receivers.take() if r.body["event"].startswith("step-failed")]
    assert request.body["alarm"]["incident_id"] == incident["id"]
    assert request.body["alarm"]["step_id"] == "close-valve"
    assert "应急步骤失败" in request.body["message"]["text"] and "step failed" in request.body["message"]["text"]
    assert "http://console.test/#/incidents/" in request.body["message"]["text"]
    clock.advance(60)  # once only: nothing new on the next runs
    scheduler.run(clock.now())
    assert not [o for o in notifications.dispatcher.run(clock.now()) if o.reason.startswith("step-failed")]
