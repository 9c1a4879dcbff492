"""Incidents that run playbooks, through the real rule engine, alarm service and playbook stage,
on SQLite and PostgreSQL; time is a fake clock, device commands go to an in-memory sender.

`Estate` is the small estate of tests/test_inhibit.py (building b2: canteen gas detector
gd-b2-canteen in zone b2-f1-z1) with the shipped playbook library. A level-1 gas reading (30 %LEL)
raises a grade 3 alarm, level 2 (55 %LEL) a grade 1 alarm (rules/library/gas.yaml).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from alarms.actions import Action, AlarmActions
from alarms.events import AlarmEvent
from alarms.incidents import IncidentGrouper
from alarms.inhibit import Inhibitor
from alarms.lifecycle import InvalidRequest
from alarms.notify.config import parse_notify_config
from alarms.notify.nflog import Entry, NotificationLog
from alarms.routing import Router
from alarms.service import AlarmService
from core.clock import FakeClock
from core.domain import DeviceRef, Family, MetricValue, Reading
from core.errors import Conflict, NotFound
from ingest.registry import DeviceDirectory
from playbooks import report
from playbooks.actions import IncidentActions, StartRequest, StepsStillOpen
from playbooks.commands import Ack, OutgoingCommand
from playbooks.loader import default_playbooks, select_playbook
from playbooks.model import Playbook
from playbooks.notify import StepNotifier
from playbooks.scheduler import PlaybookScheduler
from playbooks.stage import IncidentOutbox, PlaybookStage
from playbooks.views import IncidentEvent, incident_detail
from rules.engine import RuleEngine
from rules.model import Source
from storage.state.database import StateDatabase
from storage.state.models import Alarm, AuditEntry, Incident
from storage.state.playbook_models import PlaybookRun, RunStep
from storage.state.registry import RegistryStore
from tests.test_inhibit import RULES, SITE, T0, inventory

LIBRARY = default_playbooks()
CANTEEN = "gd-b2-canteen"
CANTEEN_KEY = f"{SITE}/gas/{CANTEEN}"
MIN = timedelta(minutes=1)
NOTIFY = """
receivers:
  - {name: cr, channel: webhook, url: "http://127.0.0.1:9/cr"}
  - {name: sup, channel: webhook, url: "http://127.0.0.1:9/sup"}
  - {name: pm, channel: webhook, url: "http://127.0.0.1:9/pm"}
defaults:
  roster:
    tier_1: [{receivers: [cr]}]
    tier_2: [{receivers: [sup]}]
    tier_3: [{receivers: [pm]}]
"""
GRADE_3_STEPS = ["start-fan", "inspect", "leak-found", "fix-leak", "stop-fan", "report"]


class MemorySender:
    """A `CommandSender` that keeps what it was given (and can pretend the broker is away)."""

    def __init__(self) -> None:
        self.sent: list[OutgoingCommand] = []
        self.up = True

    def send(self, command: OutgoingCommand) -> bool:
        if self.up:
            self.sent.append(command)
        return self.up

    def named(self, name: str) -> list[OutgoingCommand]:
        return [c for c in self.sent if c.name == name]


class Estate:
    """Registry, rules, alarm service with the playbook stage, playbook scheduler and actions."""

    def __init__(self, db: StateDatabase, library: Sequence[Playbook] = LIBRARY, *, clock: FakeClock | None = None,
                 register: bool = True) -> None:
        self.db, self.library = db, list(library)
        if register:
            RegistryStore(db).apply(inventory(), T0)
        self.clock = clock or FakeClock(T0)
        self.alarm_events: list[AlarmEvent] = []
        self.events: list[IncidentEvent] = []
        self.sender = MemorySender()
        self.log = NotificationLog(db)
        self._build()

    def _build(self) -> None:
        directory = DeviceDirectory(RegistryStore(self.db))
        self.engine = RuleEngine(RULES, directory.zone_of, directory.kind_of)
        self.outbox = IncidentOutbox()

        def locate(source: Source) -> tuple[str | None, str | None]:
            return directory.location(source.site, source.family, source.id)

        def select(category: str, grade: int, key: str | None) -> Playbook | None:
            return select_playbook(self.library, category, grade, key)

        self.service = AlarmService(self.db, self.clock, self.alarm_events.append, locate,
                                    stages=(Inhibitor(), IncidentGrouper(), PlaybookStage(select, self.outbox)))
        notifier = StepNotifier(Router(parse_notify_config(NOTIFY)), self.log)
        self.scheduler = PlaybookScheduler(self.db, sender=self.sender, notifier=notifier, publish=self.events.append)
        self.actions = IncidentActions(self.db, self.clock, self.library, self.events.append)

    def restart(self) -> Estate:
        """New objects over the same database (and the same clock): nothing kept in memory."""
        self.sender = MemorySender()
        self._build()
        self.tick()
        return self

    def at(self, delta: timedelta) -> Estate:
        self.clock.set(T0 + delta)
        self.service.apply(self.engine.tick(self.clock.now()))
        self.events += self.outbox.drain(self.db, self.clock.now())
        return self.tick()

    def tick(self) -> Estate:
        self.scheduler.run(self.clock.now())
        return self

    def gas(self, lel: float, **more: MetricValue) -> Estate:
        reading = Reading(DeviceRef(SITE, Family.GAS, CANTEEN), self.clock.now(), {"lel_pct": lel, **more})
        self.scheduler.watcher.on_readings([reading])
        self.service.apply(self.engine.process([reading]))
        self.events += self.outbox.drain(self.db, self.clock.now())
        return self

    def ack(self, command: OutgoingCommand, status: str = "done", reason: str | None = None) -> Estate:
        self.scheduler.on_ack(Ack(command.device, command.command_id, status, reason))
        return self.tick()

    # --- reading the state -----------------------------------------------------------------------

    def incident(self) -> Incident:
        with self.db.session() as session:
            [incident] = session.scalars(select(Incident).order_by(Incident.id)).all()
            return incident

    def detail(self, incident_id: int | None = None) -> dict[str, Any]:
        with self.db.session() as session:
            return incident_detail(session, incident_id or self.incident().id, self.clock.now())

    def steps(self, incident_id: int | None = None) -> dict[str, dict[str, Any]]:
        return {s["step_id"]: s for s in self.detail(incident_id)["run"]["steps"]}

    def statuses(self) -> dict[str, str]:
        return {k: v["status"] for k, v in self.steps().items()}

    def actions_log(self, incident_id: int) -> list[tuple[str, str]]:
        with self.db.session() as session:
            rows = session.scalars(select(AuditEntry).where(AuditEntry.entity_type == "incident",
                                                            AuditEntry.entity_id == str(incident_id))
                                   .order_by(AuditEntry.id))
            return [(r.action, r.actor) for r in rows]

    def notifications(self) -> list[Entry]:
        return [e for e in self.log.entries() if e.alarm_id == 0]


@pytest.fixture
def estate(state_db: StateDatabase) -> Estate:
    return Estate(state_db)


def level_1(estate: Estate) -> Estate:
    """A level-1 leak (grade 3) whose exhaust fan answers: start-fan done."""
    estate.gas(30.0).tick()
    [fan] = estate.sender.named("start_fan")
    estate.ack(fan).gas(28.0, fan=True).tick()
    return estate


def level_2(estate: Estate) -> Estate:
    level_1(estate).at(MIN).gas(55.0, fan=True)
    return estate.tick()


# --- starting and following ----------------------------------------------------------------------

def test_a_gas_alarm_opens_an_incident_running_the_gas_leak_playbook(estate: Estate) -> None:
    estate.gas(30.0)
    incident = estate.incident()
    assert (incident.cause, incident.building, incident.zone, incident.grade) == ("gas", "b2", "b2-f1-z1", 3)
    run = estate.detail()["run"]
    assert (run["playbook"], run["state"], run["grade"], run["source_device"]) == (
        "gas-leak", "running", 3, CANTEEN_KEY)
    assert list(estate.steps()) == GRADE_3_STEPS  # the steps that apply to grade 3, in playbook order
    steps = estate.steps()
    assert steps["inspect"]["deadline_at"] == (T0 + 15 * MIN).isoformat().replace("+00:00", "Z")
    assert steps["inspect"]["title_zh"].startswith("到场复核")
    assert steps["start-fan"]["status"] == "in_progress"  # grade 3: the fan command needs no confirmation
    assert [e.event for e in estate.events] == ["incident.opened"]
    assert estate.events[0].incident["run"]["playbook"] == "gas-leak"

    estate.tick()
    [fan] = estate.sender.sent
    assert (fan.device.key, fan.name) == (CANTEEN_KEY, "start_fan")
    assert orjson.loads(fan.payload()) == {"id": fan.command_id, "command": "start_fan", "args": {}}


def test_the_run_keeps_the_playbook_it_started_with(estate: Estate) -> None:
    estate.gas(30.0)
    edited = LIBRARY[:]
    gas = next(p for p in edited if p.key == "gas-leak")
    edited[edited.index(gas)] = gas.model_copy(update={"steps": gas.steps[:1]})  # reloaded with one step
    estate.library = edited
    estate.restart().at(MIN).gas(55.0)  # worse: steps are added from the snapshot, not the edited file
    assert "call-gas-company" in estate.steps()
    with estate.db.session() as session:
        [run] = session.scalars(select(PlaybookRun)).all()
        assert Playbook.model_validate(run.definition) == gas


def test_a_more_severe_grade_adds_the_steps_that_now_apply(estate: Estate) -> None:
    level_2(estate)
    statuses = estate.statuses()
    assert statuses["start-fan"] == "done"
    assert statuses["close-valve"] == "awaiting_confirmation"  # grade 1: an operator confirms first
    for step_id in ("no-ignition", "evacuate", "call-gas-company", "notify-pm", "retest", "reopen"):
        assert statuses[step_id] == "pending"
    for step_id in ("inspect", "leak-found", "fix-leak"):  # grade 3 only
        assert statuses[step_id] == "skipped"
        assert "no longer applies at grade 1" in estate.steps()[step_id]["status_reason"]
    assert estate.detail()["run"]["grade"] == 1
    assert estate.sender.named("close_valve") == []


def test_alarms_clearing_do_not_close_an_incident_with_a_run(estate: Estate) -> None:
    level_1(estate)
    incident_id = estate.incident().id
    AlarmActions(estate.db, estate.clock, estate.alarm_events.append).perform(_alarm_id(estate), Action.ACK, "op1")
    estate.at(2 * MIN).gas(3.0, fan=True)  # acknowledged and cleared: the alarm is normal
    incident = estate.incident()
    assert (incident.state, incident.closed_at, incident.alarms_cleared_at) == ("open", None, T0 + 2 * MIN)
    assert ("incident.alarms_cleared", "system") in estate.actions_log(incident_id)
    assert estate.detail()["alarms_cleared_at"] == _iso(T0 + 2 * MIN)


def test_an_incident_without_a_playbook_closes_as_before(state_db: StateDatabase) -> None:
    estate = Estate(state_db, library=[])
    estate.gas(30.0)
    assert estate.detail()["run"] is None
    estate.at(MIN).gas(2.0)
    AlarmActions(state_db, estate.clock, estate.alarm_events.append).perform(_alarm_id(estate), Action.ACK, "op1")
    incident = estate.incident()
    assert (incident.state, incident.closed_at, incident.alarms_cleared_at) == ("closed", T0 + MIN, T0 + MIN)


# --- device commands -----------------------------------------------------------------------------

def test_confirmed_command_is_sent_acknowledged_and_read_back(estate: Estate) -> None:
    level_2(estate)
    incident_id = estate.incident().id
    with pytest.raises(InvalidRequest, match="confirm it with confirm=true"):
        estate.actions.complete(incident_id, "close-valve", "op1")
    answer = estate.actions.complete(incident_id, "close-valve", "op1", confirm=True)
    assert answer["step"]["status"] == "in_progress"
    assert answer["step"]["confirmed_by"] == "op1"
    estate.tick()
    [close] = estate.sender.named("close_valve")
    assert close.device.key == CANTEEN_KEY
    estate.gas(52.0, valve="closed")  # the device reports its new state before it acknowledges
    estate.tick()
    assert estate.statuses()["close-valve"] == "in_progress"
    estate.ack(close)
    step = estate.steps()["close-valve"]
    assert (step["status"], step["done_by"]) == ("done", "system")
    [command] = step["commands"]
    assert (command["state"], command["ack_status"], command["readback_value"]) == ("done", "done",
                                                                                    {"valve": "closed"})
    actions = [a for a, _ in estate.actions_log(incident_id)]
    assert actions[actions.index("step.confirmed"):] == [
        "step.confirmed", "command.queued", "command.sent", "command.read_back", "command.acked", "step.done"]
    assert [e.step["status"] for e in estate.events if e.step and e.step["step_id"] == "close-valve"][-1] == "done"


def test_a_reading_before_the_command_was_sent_is_no_read_back(estate: Estate) -> None:
    level_2(estate)
    estate.sender.up = False  # the broker is away: the command stays queued
    estate.actions.complete(estate.incident().id, "close-valve", "op1", confirm=True)
    estate.tick().gas(52.0, valve="closed")  # not watched yet: nothing was sent
    estate.sender.up = True
    estate.tick()
    [close] = estate.sender.named("close_valve")
    estate.ack(close)
    assert estate.statuses()["close-valve"] == "in_progress"  # acknowledged, not read back yet
    estate.gas(50.0, valve="closed").tick()
    assert estate.statuses()["close-valve"] == "done"


def test_a_rejected_command_fails_the_step_and_escalates(estate: Estate) -> None:
    level_2(estate)
    incident = estate.incident()
    estate.actions.complete(incident.id, "close-valve", "op1", confirm=True)
    estate.tick()
    [close] = estate.sender.named("close_valve")
    estate.ack(close, "rejected", "valve actuator jammed")
    step = estate.steps()["close-valve"]
    assert step["status"] == "failed"
    assert "valve actuator jammed" in step["status_reason"]
    failed = [(e.receiver, e.reason) for e in estate.notifications() if e.reason.startswith("step-failed")]
    run_id, row_id = estate.detail()["run"]["id"], _row_id(estate, "close-valve")
    assert sorted(failed) == [(r, f"step-failed:{run_id}:{row_id}:1") for r in ("cr", "pm", "sup")]

    estate.actions.complete(incident.id, "close-valve", "op2", confirm=True)  # a retry: a new command id
    estate.tick()
    retry = estate.sender.named("close_valve")[-1]
    assert retry.command_id != close.command_id
    estate.gas(50.0, valve="closed").ack(retry)
    assert estate.statuses()["close-valve"] == "done"


def test_no_acknowledgement_within_the_timeout_fails_the_step(estate: Estate) -> None:
    level_2(estate)
    incident = estate.incident()
    estate.actions.complete(incident.id, "close-valve", "op1", confirm=True)
    confirmed_at = estate.clock.now()
    estate.tick()
    estate.clock.set(confirmed_at + timedelta(seconds=29))
    estate.tick()
    assert estate.statuses()["close-valve"] == "in_progress"
    estate.clock.set(confirmed_at + timedelta(seconds=30))
    estate.tick()
    step = estate.steps()["close-valve"]
    assert step["status"] == "failed"
    assert "no acknowledgement" in step["status_reason"]
    assert any(e.reason.startswith("step-failed") for e in estate.notifications())
    late = estate.sender.named("close_valve")[0]
    estate.ack(late)  # a late answer is recorded but does not revive the step
    assert estate.steps()["close-valve"]["commands"][0]["ack_status"] == "done"
    assert estate.statuses()["close-valve"] == "failed"


def test_no_read_back_within_the_timeout_fails_the_step(estate: Estate) -> None:
    level_2(estate)
    estate.actions.complete(estate.incident().id, "close-valve", "op1", confirm=True)
    estate.tick()
    estate.ack(estate.sender.named("close_valve")[0])
    estate.gas(51.0, valve="open")  # acknowledged, but the valve still reports open
    estate.clock.advance(delta=2 * MIN)
    estate.tick()
    step = estate.steps()["close-valve"]
    assert step["status"] == "failed"
    assert "valve=closed" in step["status_reason"]


def test_a_command_with_no_device_to_command_fails_at_once(state_db: StateDatabase) -> None:
    estate = Estate(state_db)
    answer = estate.actions.start("op1", StartRequest("gas-leak", SITE, 1, "b2", "b2-f1-z1"))
    incident_id = answer["id"]
    estate.actions.complete(incident_id, "close-valve", "op1", confirm=True)
    step = estate.steps(incident_id)["close-valve"]
    assert step["status"] == "failed"
    assert "no source device" in step["status_reason"]


# --- deadlines -----------------------------------------------------------------------------------

def test_an_overdue_step_escalates_once_also_after_a_restart(state_db: StateDatabase) -> None:
    estate = level_1(Estate(state_db))
    estate.at(MIN).gas(10.0, fan=True)  # ventilated: the alarm clears (and does not escalate at 10 min)
    incident_id = estate.incident().id
    estate.at(15 * MIN - timedelta(seconds=1))
    assert not [e for e in estate.notifications() if e.reason.startswith("step-overdue")]
    estate.at(15 * MIN)
    overdue = {(e.receiver, e.reason) for e in estate.notifications()}
    run_id = estate.detail()["run"]["id"]
    assert overdue == {(r, f"step-overdue:{run_id}:{_row_id(estate, 'inspect')}") for r in ("cr", "sup")}
    assert estate.steps()["inspect"]["escalated_at"] == _iso(T0 + 15 * MIN)
    estate.at(16 * MIN)
    estate.restart().at(17 * MIN)
    Estate(state_db, clock=estate.clock, register=False).at(18 * MIN)
    assert {(e.receiver, e.reason) for e in estate.notifications()} == overdue
    escalations = [a for a, _ in estate.actions_log(incident_id) if a == "step.escalated"]
    assert escalations == ["step.escalated"]
    estate.at(30 * MIN)  # leak-found is due at 30 min
    assert len({e.reason for e in estate.notifications()}) == 2


def test_state_and_deadlines_survive_a_restart_in_the_middle(state_db: StateDatabase) -> None:
    estate = level_2(Estate(state_db))
    incident_id = estate.incident().id
    estate.actions.complete(incident_id, "close-valve", "op1", confirm=True)
    estate.tick()
    [close] = estate.sender.named("close_valve")
    estate.actions.assign(incident_id, "evacuate", "op1", "guard-7")

    estate.restart()  # the worker dies and comes back: no timers in memory, the read-back index is rebuilt
    estate.clock.advance(5)
    estate.gas(48.0, valve="closed")
    estate.scheduler.on_ack(Ack(close.device, close.command_id, "done"))
    estate.tick()
    steps = estate.steps()
    assert steps["close-valve"]["status"] == "done"
    assert (steps["evacuate"]["assignee"], steps["evacuate"]["status"]) == ("guard-7", "in_progress")
    estate.restart().at(5 * MIN)  # evacuate was due at 5 min after the incident opened
    assert steps["evacuate"]["deadline_at"] == _iso(T0 + 5 * MIN)
    assert estate.steps()["evacuate"]["escalated_at"] == _iso(T0 + 5 * MIN)


# --- decisions and closing -----------------------------------------------------------------------

def test_a_false_alarm_decision_closes_the_incident(estate: Estate) -> None:
    level_1(estate)
    incident_id = estate.incident().id
    with pytest.raises(InvalidRequest, match="give the reason"):
        estate.actions.complete(incident_id, "leak-found", "op1", option="false-alarm")
    with pytest.raises(InvalidRequest, match="one of leak, false-alarm"):
        estate.actions.complete(incident_id, "leak-found", "op1", option="maybe")
    estate.actions.complete(incident_id, "leak-found", "op1", option="false-alarm", reason="cooking fumes")
    incident = estate.incident()
    assert (incident.state, incident.closed_at) == ("closed", estate.clock.now())
    run = estate.detail()["run"]
    assert (run["state"], run["closed_by"], run["close_reason"]) == ("closed", "op1", "cooking fumes")
    steps = estate.steps()
    assert (steps["leak-found"]["status"], steps["leak-found"]["option"]) == ("done", "false-alarm")
    assert steps["inspect"]["status"] == "skipped"
    assert "incident closed: cooking fumes" in steps["inspect"]["status_reason"]
    assert estate.events[-1].event == "incident.closed"
    with pytest.raises(Conflict, match="is closed"):
        estate.actions.complete(incident_id, "inspect", "op1")

    estate.at(2 * MIN).gas(2.0, fan=True)  # the alarm clearing afterwards does not reopen it
    assert estate.incident().state == "closed"
    estate.at(3 * MIN).gas(31.0, fan=True)  # a new activation of its alarm does
    assert estate.incident().state == "open"
    assert estate.detail()["run"]["state"] == "running"


def test_goto_skips_the_steps_in_between(estate: Estate) -> None:
    level_2(estate)
    incident_id = estate.incident().id
    estate.actions.complete(incident_id, "reopen", "op1", option="keep-closed")
    steps = estate.steps()
    assert steps["open-valve"]["status"] == "skipped"
    assert "skipped by decision reopen" in steps["open-valve"]["status_reason"]
    assert steps["stop-fan"]["status"] == "awaiting_confirmation"  # the goto target: not skipped
    assert steps["retest"]["status"] == "pending"  # before the decision: untouched


def test_close_is_refused_while_mandatory_steps_are_open(estate: Estate) -> None:
    level_1(estate)
    incident_id = estate.incident().id
    with pytest.raises(StepsStillOpen) as refused:
        estate.actions.close(incident_id, "op1", "all clear")
    assert refused.value.steps == ["inspect", "leak-found", "fix-leak", "report"]  # stop-fan is optional
    assert "inspect (pending)" in str(refused.value)
    estate.actions.complete(incident_id, "inspect", "op1", reason="hose clamp loose")
    estate.actions.complete(incident_id, "leak-found", "op1", option="leak")
    estate.actions.skip(incident_id, "fix-leak", "op2", "the gas company repaired it")
    with pytest.raises(InvalidRequest, match="needs a reason"):
        estate.actions.skip(incident_id, "report", "op2", "  ")
    estate.actions.complete(incident_id, "report", "op2")
    with pytest.raises(InvalidRequest, match="needs a reason"):
        estate.actions.close(incident_id, "op1", "")
    estate.actions.close(incident_id, "op1", "leak repaired, re-tested")
    steps = estate.steps()
    assert estate.incident().state == "closed"
    assert steps["stop-fan"]["status"] == "skipped"  # optional: skipped by the close
    assert (steps["fix-leak"]["status_reason"], steps["fix-leak"]["done_by"]) == ("the gas company repaired it", "op2")
    with pytest.raises(Conflict, match="already closed"):
        estate.actions.close(incident_id, "op1", "again")


def test_steps_can_be_assigned_commented_and_are_versioned(estate: Estate) -> None:
    level_1(estate)
    incident_id = estate.incident().id
    step = estate.actions.assign(incident_id, "inspect", "op1", "tech-3")["step"]
    assert (step["assignee"], step["status"]) == ("tech-3", "in_progress")
    with pytest.raises(Conflict, match="changed"):
        estate.actions.complete(incident_id, "inspect", "op2", version=step["version"] - 1)
    estate.actions.comment(incident_id, "inspect", "tech-3", "reading 28 %LEL at the hose",
                           "https://photos.example/p/1.jpg")
    with pytest.raises(InvalidRequest, match="photo_url"):
        estate.actions.comment(incident_id, "inspect", "tech-3", "x", "javascript:alert(1)")
    with pytest.raises(NotFound, match="no step 'nope'"):
        estate.actions.complete(incident_id, "nope", "op1")
    estate.actions.complete(incident_id, "inspect", "tech-3", version=step["version"])  # comments do not count
    with pytest.raises(Conflict, match="already done"):
        estate.actions.complete(incident_id, "inspect", "tech-3")
    [evidence] = estate.steps()["inspect"]["evidence"]
    assert (evidence["by"], evidence["photo_url"]) == ("tech-3", "https://photos.example/p/1.jpg")


def test_an_operator_starts_a_playbook_and_later_alarms_join_it(estate: Estate) -> None:
    detail = estate.actions.start("op1", StartRequest("gas-leak", SITE, 2, "b2", "b2-f1-z1", f"gas/{CANTEEN}",
                                                      "a resident smells gas"))
    assert (detail["state"], detail["grade"], detail["alarm_count"]) == ("open", 2, 0)
    assert detail["run"]["started_by"] == "op1"
    assert detail["run"]["source_device"] == CANTEEN_KEY
    assert estate.events[-1].event == "incident.opened"
    estate.clock.advance(30)
    estate.gas(31.0)
    incident = estate.incident()  # one incident: the alarm joined it
    assert (incident.alarm_count, incident.grade) == (1, 2)
    with pytest.raises(Conflict, match="already open here"):
        estate.actions.start("op2", StartRequest("gas-leak", SITE, 1, "b2", "b2-f1-z1"))
    with pytest.raises(InvalidRequest, match="no playbook 'volcano'"):
        estate.actions.start("op2", StartRequest("volcano", SITE, 1))
    with pytest.raises(InvalidRequest, match="family/device_id"):
        estate.actions.start("op2", StartRequest("fire", SITE, 1, device="lamp/x"))


# --- the report ----------------------------------------------------------------------------------

def test_the_report_has_timeline_sla_and_actors(estate: Estate) -> None:
    level_2(estate)
    incident_id = estate.incident().id
    estate.clock.advance(60)
    estate.actions.complete(incident_id, "close-valve", "op1", confirm=True)
    estate.tick()
    estate.gas(40.0, valve="closed").ack(estate.sender.named("close_valve")[0])
    estate.actions.comment(incident_id, "evacuate", "guard-7", "<b>floor cleared</b>")
    with estate.db.session() as session:
        interim = report.markdown(report.build(session, incident_id, estate.clock.now()))
    assert "未关闭 / OPEN" in interim
    for step_id in ("no-ignition", "evacuate", "call-gas-company", "notify-pm", "gas-company-on-site", "retest",
                    "report"):
        estate.actions.complete(incident_id, step_id, "op2")
    estate.actions.complete(incident_id, "reopen", "op2", option="keep-closed")
    estate.clock.advance(delta=40 * MIN)
    estate.actions.close(incident_id, "op1", "valve closed, leak repaired")
    with estate.db.session() as session:
        built = report.build(session, incident_id, estate.clock.now())
    text, page = report.markdown(built), report.html(built)
    assert "未关闭" not in text
    assert "## 时间线 / Timeline" in text and "<h2>时间线 / Timeline</h2>" in page
    assert "| 响应（首次人工处置） / Response (first action by a person) | ≤ 5m00s | 2m00s | 达标 / met |" in text
    assert "Handling (until closed) | ≤ 30m00s |" in text and "超时 / missed" in text
    assert "告警产生 / alarm raised" in text and "指令下发 / command sent" in text
    assert "状态读回 / state read back" in text and "事件关闭 / incident closed" in text
    assert "- **op1**: " in text and "- **guard-7**: 备注 / comment ×1" in text
    assert "gas.lel_l2" in text and "valve=closed" in text
    assert "&lt;b&gt;floor cleared&lt;/b&gt;" in page and "<b>floor cleared</b>" not in page
    assert "guard-7: &lt;b&gt;floor cleared&lt;/b&gt;" in text  # no HTML from people in the Markdown either
    timeline = [line.at for line in built.timeline]
    assert timeline == sorted(timeline)


def _row_id(estate: Estate, step_id: str) -> int:
    with estate.db.session() as session:
        return session.scalars(select(RunStep.id).where(RunStep.step_id == step_id)).one()


def _iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def _alarm_id(estate: Estate) -> int:
    with estate.db.session() as session:
        return session.scalars(select(Alarm.id).where(Alarm.device_id == CANTEEN)).one()


# --- the schema ----------------------------------------------------------------------------------

def test_migration_0007_matches_the_models_and_downgrades(state_db: StateDatabase) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext

    from storage.state.database import MIGRATIONS
    from storage.state.models import Base

    mine = {"playbook_runs", "run_steps", "step_commands", "step_evidence"}

    def differences() -> list[Any]:
        with state_db.engine.connect() as connection:
            found = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        return [d for d in found if _table_of(d) in mine or "alarms_cleared_at" in repr(d)]

    assert differences() == []
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    for target in ("0006", "head"):
        with state_db.engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if target == "0006" else command.upgrade)(config, target)
    assert differences() == []


def _table_of(difference: Any) -> str | None:
    for part in difference if isinstance(difference, list) else [difference]:
        for item in part if isinstance(part, tuple) else (part,):
            name = getattr(item, "name", None) if not isinstance(item, str) else None
            table = getattr(item, "table", None)
            if table is not None and getattr(table, "name", None):
                return str(table.name)
            if name and hasattr(item, "columns"):
                return str(name)
    return None
