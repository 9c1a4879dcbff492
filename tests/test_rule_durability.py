"""Rule state and timers survive a restart of the worker (state database: SQLite and PostgreSQL).

The worker is "restarted" by building a fresh engine and pipeline on the same database, as the
ingest process does at start-up (`RuleEngine.restore(RuleStateStore.load())`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from alarms.service import AlarmService
from core.clock import FakeClock
from core.domain import DeviceRef, Family, Reading
from ingest.presence import PresenceTracker
from ingest.registry import DeviceDirectory
from rules.engine import RuleEngine
from rules.loader import default_rules
from runtime.ingest_process import RulePipeline, seeded_presence
from storage.state.database import StateDatabase
from storage.state.models import Alarm
from storage.state.registry import DeviceSpec, Inventory, RegistryStore, SiteSpec
from storage.state.rule_state import RuleStateStore

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
ROOM = DeviceRef("s1", Family.ENV, "room-1")


def start_worker(db: StateDatabase, clock: FakeClock) -> RulePipeline:
    engine = RuleEngine(default_rules())
    states = RuleStateStore(db)
    engine.restore(states.load())
    return RulePipeline(engine, AlarmService(db, clock, lambda _e: None), states, clock)


def alarms(db: StateDatabase) -> list[Alarm]:
    with db.session() as session:
        return list(session.scalars(select(Alarm)))


def test_a_restart_in_the_middle_of_an_on_delay_fires_once_at_the_right_time(state_db: StateDatabase) -> None:
    clock = FakeClock(T0)
    first = start_worker(state_db, clock)
    for seconds in (0, 10, 20, 30):
        clock.set(T0 + timedelta(seconds=seconds))
        first.on_readings([Reading(ROOM, clock.now(), {"co2_ppm": 1400.0})])
    clock.advance(1)
    first.tick()  # the periodic save
    del first  # the worker dies 31 s into the 60 s on-delay

    clock.set(T0 + timedelta(seconds=45))
    second = start_worker(state_db, clock)
    second.tick()
    assert alarms(state_db) == []
    clock.set(T0 + timedelta(seconds=75))  # the first tick after the restart past the delay
    second.tick()
    second.tick()
    [alarm] = alarms(state_db)
    assert alarm.raised_at == T0 + timedelta(seconds=60)  # counted from the first breach, not the restart
    assert alarm.state == "unack"

    third = start_worker(state_db, clock)  # and a restart after it fired does not fire it again
    clock.advance(30)
    third.tick()
    third.on_readings([Reading(ROOM, clock.now(), {"co2_ppm": 1400.0})])
    assert len(alarms(state_db)) == 1
    assert alarms(state_db)[0].repeat_count == 0


def test_a_restart_keeps_an_active_alarm_clearable(state_db: StateDatabase) -> None:
    clock = FakeClock(T0)
    first = start_worker(state_db, clock)
    for seconds in (0, 60):
        clock.set(T0 + timedelta(seconds=seconds))
        first.on_readings([Reading(ROOM, clock.now(), {"co2_ppm": 1400.0})])
    assert [a.state for a in alarms(state_db)] == ["unack"]
    second = start_worker(state_db, clock)
    clock.advance(10)
    second.on_readings([Reading(ROOM, clock.now(), {"co2_ppm": 600.0})])
    assert [a.state for a in alarms(state_db)] == ["rtn_unack"]


GAS = DeviceRef("s1", Family.GAS, "gd1")
QUIET = DeviceRef("s1", Family.GAS, "gd2")  # registered, never reports after the restart


class PresenceWorker:
    """What `build_ingest` wires for presence: restored rule state, a seeded tracker, the pipeline."""

    def __init__(self, db: StateDatabase, clock: FakeClock) -> None:
        engine = RuleEngine(default_rules())
        states = RuleStateStore(db)
        saved = states.load()
        engine.restore(saved)
        self.clock = clock
        self.pipeline = RulePipeline(engine, AlarmService(db, clock, lambda _e: None), states, clock)
        self.tracker: PresenceTracker = seeded_presence(DeviceDirectory(RegistryStore(db)), saved, engine.rules,
                                                        "+", clock.now())

    def report(self, device: DeviceRef) -> None:
        reading = Reading(device, self.clock.now(), {"lel_pct": 0.0})
        self.pipeline.on_presence(self.tracker.readings([reading], self.clock.now()))
        self.pipeline.on_readings([reading])

    def at(self, seconds: float) -> None:
        """One timer tick at T0 + `seconds`, as `IngestProcess._tick_loop` runs it."""
        self.clock.set(T0 + timedelta(seconds=seconds))
        self.pipeline.tick()
        self.pipeline.on_presence(self.tracker.sweep(self.clock.now()))


def gas_offline(db: StateDatabase) -> dict[str, str]:
    return {a.device_id: a.state for a in alarms(db) if a.rule_id == "comms.gas_offline"}


def register(db: StateDatabase, *devices: DeviceRef) -> None:
    specs = tuple(DeviceSpec(d.site, d.family, d.device_id) for d in devices)
    RegistryStore(db).apply(Inventory("test", (SiteSpec("s1"),), devices=specs), T0)


def test_a_device_reporting_after_a_restart_clears_its_restored_offline_alarm(state_db: StateDatabase) -> None:
    clock = FakeClock(T0)
    first = PresenceWorker(state_db, clock)
    first.report(GAS)
    first.at(181)  # silent past 3 × 60 s: offline, the 2 min on-delay starts
    first.at(301)
    assert gas_offline(state_db) == {"gd1": "unack"}
    del first  # the worker restarts; rule state was saved with the alarm

    second = PresenceWorker(state_db, clock)
    for seconds in range(400, 800, 60):  # the detector reports every minute again
        second.at(seconds)
        second.report(GAS)
    assert gas_offline(state_db) == {"gd1": "rtn_unack"}  # cleared, not stuck active
    assert second.tracker.is_online(GAS)


def test_a_restart_during_the_on_delay_neither_raises_nor_sticks_for_a_device_that_reports(
        state_db: StateDatabase) -> None:
    clock = FakeClock(T0)
    first = PresenceWorker(state_db, clock)
    first.report(GAS)
    first.at(181)  # offline, pending
    first.at(183)  # the periodic save
    del first
    second = PresenceWorker(state_db, clock)
    second.at(190)
    second.report(GAS)  # back before the on-delay ran out
    for seconds in range(250, 1000, 60):
        second.at(seconds)
        second.report(GAS)
    assert gas_offline(state_db) == {}


def test_registered_devices_that_never_report_after_a_restart_go_offline(state_db: StateDatabase) -> None:
    register(state_db, GAS, QUIET)
    clock = FakeClock(T0)
    worker = PresenceWorker(state_db, clock)
    for seconds in range(0, 400, 60):
        worker.at(seconds)
        worker.report(GAS)
    assert worker.tracker.is_online(QUIET) is False  # offline after 3 × 60 s without a word
    assert gas_offline(state_db) == {"gd2": "unack"}  # and alarmed after the on-delay


RULE = """version: 1
rules:
  - id: t.lel
    cite: test
    family: gas
    condition: {{kind: threshold, metric: lel_pct, op: ">=", limit: {limit}}}
    on_delay: 60s
    category: gas
    grade: 3
    playbook: gas-leak
    message_zh: "可燃气体 {{value}}"
    message_en: "gas {{value}}"
"""


def test_hot_reload_of_edited_rule_files(state_db: StateDatabase, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    import os

    from rules.loader import load_rules
    from runtime.ingest_process import RuleReloader

    path = tmp_path / "rules.yaml"
    path.write_text(RULE.format(limit=25))
    clock = FakeClock(T0)
    engine = RuleEngine(load_rules([path]))
    pipeline = RulePipeline(engine, AlarmService(state_db, clock, lambda _e: None), RuleStateStore(state_db), clock)
    reloader = RuleReloader([path], pipeline)
    gas = DeviceRef("s1", Family.GAS, "g1")
    pipeline.on_readings([Reading(gas, T0, {"lel_pct": 30.0})])

    path.write_text("rules: [{id: broken")  # a half-saved edit: logged, the rules in force stay
    os.utime(path, (1, 1))
    reloader()
    assert "invalid" in caplog.text
    assert [r.id for r in engine.rules] == ["t.lel"]

    path.write_text(RULE.format(limit=25).replace("grade: 3", "grade: 3\n    off_delay: 5s"))
    os.utime(path, (2, 2))
    reloader()  # the edited rule keeps its alarm timing: the on-delay started before the reload
    clock.set(T0 + timedelta(seconds=60))
    pipeline.tick()
    assert [(a.rule_id, a.raised_at) for a in alarms(state_db)] == [("t.lel", T0 + timedelta(seconds=60))]

    path.write_text("version: 1\nrules: []\n")
    os.utime(path, (3, 3))
    reloader()  # the rule is gone: its alarm returns to normal instead of staying active forever
    assert [a.state for a in alarms(state_db)] == ["rtn_unack"]
