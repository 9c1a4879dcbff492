"""Every library playbook, from its simulator scenario to a closed incident with a report.

`ScenarioLoop` closes the loop between the simulator and fmon without a broker, at full speed:
the simulator's engine plays the scenario (docs/scenarios) and its gateways publish into memory;
each window of simulated time goes through fmon's real ingest processor (decode, registry check,
presence), rule pipeline, alarm service with the playbook stage, and playbook scheduler, with the
fake clock at the window's end. Commands the scheduler sends are carried out by the simulated
devices (if their gateway is connected), and their acks come back as the command link would hand
them over. The broker path itself is tested in tests/test_playbook_mqtt.py.

An operator (`work_through`) then takes the incident's steps in order as the console would:
confirms commands, decides (`real` emergencies go on, `false` alarms close through the
decision), completes the rest, skips what failed with a reason, and closes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
from sqlalchemy import select

from alarms.incidents import IncidentGrouper
from alarms.inhibit import Inhibitor
from alarms.maintenance import MaintenanceStage
from alarms.service import AlarmService
from core.clock import FakeClock
from core.topics import TopicKind, parse_topic
from ingest.inventory import load_inventory
from ingest.mqtt import Message
from ingest.presence import PresenceTracker
from ingest.processor import IngestProcessor
from ingest.registry import DeviceDirectory
from ingest.spool import Spool
from playbooks import report
from playbooks.actions import IncidentActions
from playbooks.commands import OutgoingCommand, parse_ack
from playbooks.loader import default_playbooks, select_playbook
from playbooks.model import Playbook
from playbooks.scheduler import PlaybookScheduler
from playbooks.stage import IncidentOutbox, PlaybookStage
from playbooks.views import IncidentEvent, incident_detail
from rules.engine import RuleEngine
from rules.loader import default_rules
from runtime.demo import DEMO_INVENTORY
from runtime.ingest_process import RulePipeline
from simulators.engine import SimEngine
from simulators.gateway import GatewayLink, MemoryTransport, Published
from simulators.offline import apply_tick
from simulators.payloads import ack_payload
from simulators.scenario import bind, load_scenario, scenario_path
from simulators.site import demo_estate
from storage.state.database import StateDatabase
from storage.state.dead_letters import DeadLetterStore
from storage.state.models import Incident
from storage.state.registry import RegistryStore
from storage.state.rule_state import RuleStateStore

LIBRARY = default_playbooks()
RULES = default_rules()
OPERATOR = "op-scenario"
Path_ = Literal["real", "false"]

SCENARIOS: dict[str, tuple[str, Path_]] = {  # scenario → (the playbook its incident runs, the operator's path)
    "fire-b1-f3": ("fire", "real"),
    "fire-false-alarm": ("fire", "false"),
    "elevator-entrapment": ("elevator-entrapment", "real"),
    "gas-leak-canteen": ("gas-leak", "real"),
    "power-outage-b2": ("power-outage", "real"),
    "night-leak-b2": ("water-outage", "real"),  # pipe-burst-b1 needs a day of flow history first
    "gateway-offline-b2": ("comms-failure", "real"),
    "earthquake": ("extreme-weather", "real"),
    "air-quality-haze": ("air-quality", "real"),
    "pump-degradation": ("equipment-failure", "real"),
}


class LoopSender:
    def __init__(self) -> None:
        self.pending: list[OutgoingCommand] = []

    def send(self, command: OutgoingCommand) -> bool:
        self.pending.append(command)
        return True


class ScenarioLoop:
    """The simulator and fmon in one loop over simulated time (see the module docstring)."""

    def __init__(self, db: StateDatabase, tmp_path: Path, name: str, window: timedelta) -> None:
        estate = demo_estate("demo", seed=1)
        self.bound = bind(load_scenario(scenario_path(name)), estate)
        behind = {d.ref.device_id for gw in self.bound.gateways for d in estate.on_gateway(gw)}
        self.site = estate.only(self.bound.devices | behind)
        self.start = self.now = self.bound.scenario.start
        self.window, self.db = window, db
        self.clock = FakeClock(self.start)
        self.log: list[Published] = []
        self._seen = 0
        self.links = {gw: GatewayLink("demo", gw, MemoryTransport("demo", gw, lambda: self.now, self.log))
                      for gw in self.site.gateways}
        self.engine = SimEngine(self.site, self.start, self.bound.steps)
        self.events: list[IncidentEvent] = []
        self._fmon(db, tmp_path)

    def _fmon(self, db: StateDatabase, tmp_path: Path) -> None:
        registry = RegistryStore(db)
        registry.apply(load_inventory(DEMO_INVENTORY), self.start, actor="test")
        directory = DeviceDirectory(registry)
        engine = RuleEngine(RULES, directory.zone_of, directory.kind_of)
        outbox = IncidentOutbox()

        def select(category: str, grade: int, key: str | None) -> Playbook | None:
            return select_playbook(LIBRARY, category, grade, key)

        stages = (MaintenanceStage(), Inhibitor(), IncidentGrouper(), PlaybookStage(select, outbox))
        alarms = AlarmService(db, self.clock, lambda _e: None,
                              lambda s: directory.location(s.site, s.family, s.id), stages=stages)
        self.pipeline = RulePipeline(engine, alarms, RuleStateStore(db), self.clock,
                                     after_alarms=lambda: self.events.extend(outbox.drain(db, self.clock.now())))
        self.presence = PresenceTracker(directory.report_interval)
        self.sender = LoopSender()
        self.scheduler = PlaybookScheduler(db, sender=self.sender, publish=self.events.append)

        def on_readings(readings: list[Any]) -> None:
            self.scheduler.watcher.on_readings(readings)
            self.pipeline.on_readings(readings)

        self.spool = Spool(tmp_path / "spool.db")
        self.processor = IngestProcessor(DeadLetterStore(db), self.spool, on_readings, presence=self.presence,
                                         on_presence=self.pipeline.on_presence, admit=directory.check)
        self.actions = IncidentActions(db, self.clock, LIBRARY, self.events.append)

    def run_until(self, end: datetime) -> None:
        """Simulate to `end`, handing fmon a window at a time."""
        while self.now < end:
            window_end = min(self.now + self.window, end)
            while True:
                apply_tick(self.engine.step(self.now), self.links)
                upcoming = max(self.engine.next_wakeup(), self.now + timedelta(milliseconds=100))
                if upcoming > window_end:
                    break
                self.now = upcoming
            self.now = window_end
            self._fmon_window()

    def run_for(self, delta: timedelta) -> None:
        self.run_until(self.now + delta)

    def _fmon_window(self) -> None:
        self.clock.set(self.now)
        fresh, self._seen = self.log[self._seen:], len(self.log)
        messages = [Message(p.topic, p.payload, p.at, qos=1) for p in fresh]
        if messages:
            self.processor(messages, lambda: None)
        self._acks(fresh)
        self.pipeline.tick()
        self.pipeline.on_presence(self.presence.sweep(self.now))
        self.scheduler.run(self.now)
        self._carry_out_commands()

    def _carry_out_commands(self) -> None:
        commands, self.sender.pending = self.sender.pending, []
        for command in commands:
            device = self.site.devices.get(command.device.device_id)
            if device is None or not self.links[device.gateway_id].transport.connected:
                continue  # the gateway does not hear it: no answer
            ack = self.engine.command(device.ref.device_id, orjson.loads(command.payload()), self.now)
            self.links[device.gateway_id].ack(device.ref, ack_payload(ack.command_id, ack.status, ack.reason))

    def _acks(self, published: list[Published]) -> None:
        for message in published:
            parsed = parse_topic(message.topic)
            if parsed.kind is TopicKind.COMMAND_ACK and parsed.device is not None:
                ack = parse_ack(parsed.device, message.payload)
                if ack is not None:
                    self.scheduler.on_ack(ack)

    # --- reading ---------------------------------------------------------------------------------

    def incidents(self) -> list[Incident]:
        with self.db.session() as session:
            return list(session.scalars(select(Incident).order_by(Incident.id)))

    def detail(self, incident_id: int) -> dict[str, Any]:
        with self.db.session() as session:
            return incident_detail(session, incident_id, self.clock.now())


@dataclass
class Walk:
    decisions: list[tuple[str, str]]
    skipped: list[str]


def work_through(loop: ScenarioLoop, incident_id: int, path: Path_) -> Walk:
    """Take the steps in order, as an operator at the console would, until none is left to do."""
    walk = Walk([], [])
    for _ in range(60):
        detail = loop.detail(incident_id)
        if detail["state"] == "closed":
            break
        acted = False
        for step in detail["run"]["steps"]:
            if step["status"] in ("done", "skipped"):
                continue
            acted |= _act(loop, incident_id, step, path, walk)
            if loop.detail(incident_id)["state"] == "closed":
                return walk
        loop.run_for(timedelta(seconds=30) if acted else timedelta(minutes=2))
    return walk


def _act(loop: ScenarioLoop, incident_id: int, step: dict[str, Any], path: Path_, walk: Walk) -> bool:
    step_id = step["step_id"]
    if step["kind"] == "command":
        if step["status"] == "in_progress":
            return False
        if step["status"] == "failed":
            loop.actions.skip(incident_id, step_id, OPERATOR, f"done by hand on site: {step['status_reason']}")
            walk.skipped.append(step_id)
        else:
            loop.actions.complete(incident_id, step_id, OPERATOR, confirm=True)
        return True
    if step["kind"] == "decision":
        option = _choose(step["options"], path)
        reason = "false alarm confirmed on site" if option["then"] == "close" else ""
        loop.actions.complete(incident_id, step_id, OPERATOR, option=option["id"], reason=reason)
        walk.decisions.append((step_id, option["id"]))
        return True
    loop.actions.complete(incident_id, step_id, OPERATOR, reason=f"{step_id}: done")
    return True


def _choose(options: list[dict[str, Any]], path: Path_) -> dict[str, Any]:
    if path == "false":
        closing = [o for o in options if o["then"] == "close"]
        if closing:
            return closing[0]
    going_on = [o for o in options if o["then"] == "continue"]
    return (going_on or [o for o in options if o["then"] == "goto"] or options)[0]


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[StateDatabase]:
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    yield db
    db.dispose()


def test_every_library_playbook_has_a_scenario() -> None:
    assert {key for key, _ in SCENARIOS.values()} == {p.key for p in LIBRARY}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_runs_its_playbook_to_a_closed_incident_with_a_report(sqlite_db: StateDatabase, tmp_path: Path,
                                                                       name: str) -> None:
    playbook, path = SCENARIOS[name]
    duration = loop_duration(name)
    loop = ScenarioLoop(sqlite_db, tmp_path, name, window=max(timedelta(seconds=30), duration / 400))
    try:
        loop.run_until(loop.start + duration)
        running = [i for i in loop.incidents() if i.playbook == playbook or _run_key(loop, i.id) == playbook]
        found = [(i.cause, i.playbook) for i in loop.incidents()]
        assert running, f"{name}: no incident ran {playbook}; incidents: {found}"
        incident = running[0]
        assert _run_key(loop, incident.id) == playbook
        loop.window = timedelta(seconds=10)
        walk = work_through(loop, incident.id, path)
        detail = loop.detail(incident.id)
        if detail["state"] != "closed":
            loop.actions.close(incident.id, OPERATOR, f"scenario {name} handled")
        detail = loop.detail(incident.id)
    finally:
        loop.spool.close()
    assert detail["state"] == "closed", walk
    run = detail["run"]
    assert run["state"] == "closed" and run["closed_by"] == OPERATOR
    assert all(s["status"] in ("done", "skipped") for s in run["steps"])
    if path == "false":
        assert run["close_reason"] == "false alarm confirmed on site"
    with sqlite_db.session() as session:
        text = report.markdown(report.build(session, incident.id, loop.clock.now()))
    assert "未关闭" not in text and f"- **{OPERATOR}**:" in text
    assert "预案启动 / playbook started" in text and "事件关闭 / incident closed" in text
    assert next(e.event for e in loop.events if e.incident["id"] == incident.id) == "incident.opened"


def loop_duration(name: str) -> timedelta:
    """Long scenarios are cut short once their incident is there (pump degradation: 2 days)."""
    duration = load_scenario(scenario_path(name)).scenario.duration
    return min(duration, timedelta(hours=30))


def _run_key(loop: ScenarioLoop, incident_id: int) -> str | None:
    run = loop.detail(incident_id)["run"]
    return None if run is None else str(run["playbook"])
