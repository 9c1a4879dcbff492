"""The state database and the alarm service, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from alarms import maintenance
from alarms.actions import Action, AlarmActions
from alarms.events import AlarmEvent
from alarms.kpis import KpiWindow, alarm_kpis
from alarms.service import AlarmService
from core.clock import FakeClock
from core.domain import AlarmState, DeviceRef, Family, Reading, Role
from core.errors import Conflict
from rules.engine import RuleEngine
from rules.loader import rule_by_id
from storage.state.database import StateDatabase
from storage.state.dead_letters import DeadLetterStore, Rejection
from storage.state.models import Alarm, AuditEntry
from storage.state.users import UserStore

CO2_HIGH = rule_by_id("env.co2_high")

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
ROOM = DeviceRef("s1", Family.ENV, "room-1")


def raise_and_clear(db: StateDatabase, clock: FakeClock, events: list[AlarmEvent]) -> AlarmService:
    service = AlarmService(db, clock, events.append)
    engine = RuleEngine([CO2_HIGH])
    readings = [Reading(ROOM, T0 + timedelta(seconds=s), {"co2_ppm": 1200.0}) for s in (0, 60)]
    service.apply(engine.process(readings))
    return service


def alarms_of(db: StateDatabase) -> list[Alarm]:
    with db.session() as session:
        return list(session.scalars(select(Alarm).order_by(Alarm.id)))


def audit_of(db: StateDatabase) -> list[tuple[str, str]]:
    with db.session() as session:
        return [(a.action, a.actor) for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_upgrade_is_idempotent(state_db: StateDatabase) -> None:
    state_db.upgrade()
    assert alarms_of(state_db) == []


def test_raise_creates_one_unack_alarm_with_audit(state_db: StateDatabase) -> None:
    events: list[AlarmEvent] = []
    raise_and_clear(state_db, FakeClock(T0 + timedelta(seconds=61)), events)
    [alarm] = alarms_of(state_db)
    assert (alarm.state, alarm.grade, alarm.source, alarm.value) == ("unack", 4, ROOM.key, 1200.0)
    assert alarm.raised_at == T0 + timedelta(seconds=60)
    assert alarm.message_en.startswith("room-1 CO2 at 1200 ppm")
    assert audit_of(state_db) == [("alarm.raised", "system")]
    assert [e.event for e in events] == ["raised"]
    assert events[0].alarm["id"] == alarm.id
    assert events[0].alarm["grade_label_zh"] == "四级 一般"


def test_repeat_and_return_to_normal(state_db: StateDatabase) -> None:
    clock = FakeClock(T0 + timedelta(seconds=61))
    events: list[AlarmEvent] = []
    service = raise_and_clear(state_db, clock, events)
    engine_changes = RuleEngine([CO2_HIGH])
    readings = [Reading(ROOM, T0 + timedelta(seconds=s), {"co2_ppm": v}) for s, v in ((0, 1200.0), (60, 1200.0))]
    service.apply(engine_changes.process(readings))  # same rule/source while open: a repeat
    service.apply(engine_changes.process([Reading(ROOM, T0 + timedelta(seconds=90), {"co2_ppm": 800.0})]))
    [alarm] = alarms_of(state_db)
    assert (alarm.state, alarm.repeat_count, alarm.cleared_at) == ("rtn_unack", 1, T0 + timedelta(seconds=90))
    assert [e.event for e in events] == ["raised", "repeated", "cleared"]
    assert [a for a, _ in audit_of(state_db)] == ["alarm.raised", "alarm.repeated", "alarm.cleared"]


def test_only_one_open_alarm_per_rule_and_source(state_db: StateDatabase) -> None:
    raise_and_clear(state_db, FakeClock(T0), [])
    [alarm] = alarms_of(state_db)
    duplicate = Alarm(**{c: getattr(alarm, c) for c in (
        "rule_id", "source", "site", "family", "device_id", "category", "grade", "state",
        "message_zh", "message_en", "value", "raised_at", "updated_at")})
    with pytest.raises(IntegrityError), state_db.session() as session:
        session.add(duplicate)
    with state_db.session() as session:
        session.get(Alarm, alarm.id).state = AlarmState.NORMAL.value  # type: ignore[union-attr]
    with state_db.session() as session:
        session.add(duplicate)  # after normal, a new occurrence is a new alarm


def test_users_and_dead_letters(state_db: StateDatabase) -> None:
    users = UserStore(state_db)
    users.add("op1", "hash", Role.OPERATOR, T0)
    with pytest.raises(Conflict, match="op1"):
        users.add("op1", "hash", Role.OPERATOR, T0)
    users.add("op1", "hash2", Role.ADMIN, T0, replace=True)
    assert users.get("op1").role == "admin"  # type: ignore[union-attr]
    dead = DeadLetterStore(state_db)
    dead.add([Rejection(T0, "fmon/v1/s/env/d/telemetry", "bad_json", "not json", b"{x", "s/env/d")])
    [row] = dead.recent()
    assert (row.reason, row.device_key, row.payload_excerpt, row.received_at) == ("bad_json", "s/env/d", "{x", T0)
    assert dead.counts_by_reason() == {"bad_json": 1}
    dead.add([Rejection(T0, "t", "bad_value", "x", b"", "s/env/d"), Rejection(T0, "odd/topic", "bad_topic", "", b"")])
    assert dead.counts_by_device() == {"s/env/d": 2, "odd/topic": 1}


# --- shelve and out of service belong to the point (rule, source): alarms.points -----------------

def co2(engine: RuleEngine, service: AlarmService, seconds: float, ppm: float) -> None:
    service.apply(engine.process([Reading(ROOM, T0 + timedelta(seconds=seconds), {"co2_ppm": ppm})]))


def occurrence(engine: RuleEngine, service: AlarmService, start: float) -> None:
    """The condition comes (two readings: the rule's on-delay) and goes again."""
    for offset, ppm in ((0, 1300.0), (60, 1300.0), (90, 800.0)):
        co2(engine, service, start + offset, ppm)


def point_audit(db: StateDatabase, alarm_id: int) -> list[tuple[str, str, dict[str, object]]]:
    with db.session() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.entity_id == str(alarm_id)).order_by(AuditEntry.id))
        return [(a.action, a.actor, a.detail) for a in rows]


def test_a_shelve_stays_with_the_point_across_occurrences(state_db: StateDatabase) -> None:
    clock = FakeClock(T0 + timedelta(minutes=5))
    service, engine = AlarmService(state_db, clock, lambda _e: None), RuleEngine([CO2_HIGH])
    actions = AlarmActions(state_db, clock, lambda _e: None)
    occurrence(engine, service, 0)  # raised, then rtn_unack
    [first] = alarms_of(state_db)
    until = clock.now() + timedelta(hours=4)
    actions.perform(first.id, Action.SHELVE, "op1", "chattering sensor, for the night", until)
    actions.perform(first.id, Action.ACK, "op1", "seen")  # rtn_unack → normal
    occurrence(engine, service, 600)  # a new occurrence: a new row, still shelved
    first, second = alarms_of(state_db)
    assert (first.state, first.shelved_until) == ("normal", None)  # moved, not copied
    assert (second.shelved_until, second.shelved_by, second.shelve_reason) == (
        until, "op1", "chattering sensor, for the night")
    assert ("alarm.shelve", "system", {"carried_from": first.id, "until": until.isoformat(),
                                       "activation": "raise"}) in point_audit(state_db, second.id)
    actions.perform(second.id, Action.UNSHELVE, "op1", "sensor replaced")
    actions.perform(second.id, Action.ACK, "op1", "seen")
    occurrence(engine, service, 1200)  # unshelved: the next occurrence is annunciated
    assert alarms_of(state_db)[2].shelved_until is None


def test_an_expired_shelve_is_not_carried(state_db: StateDatabase) -> None:
    clock = FakeClock(T0 + timedelta(minutes=5))
    service, engine = AlarmService(state_db, clock, lambda _e: None), RuleEngine([CO2_HIGH])
    occurrence(engine, service, 0)
    [first] = alarms_of(state_db)
    actions = AlarmActions(state_db, clock, lambda _e: None)
    actions.perform(first.id, Action.SHELVE, "op1", "an hour", clock.now() + timedelta(hours=1))
    actions.perform(first.id, Action.ACK, "op1", "seen")
    clock.advance(delta=timedelta(hours=1))
    occurrence(engine, service, 600)
    assert alarms_of(state_db)[1].shelved_until is None


def test_out_of_service_stays_with_the_point_and_hides_repeats(state_db: StateDatabase) -> None:
    clock = FakeClock(T0 + timedelta(minutes=5))
    events: list[AlarmEvent] = []
    service, engine = AlarmService(state_db, clock, events.append), RuleEngine([CO2_HIGH])
    occurrence(engine, service, 0)
    [first] = alarms_of(state_db)
    with state_db.session() as session:
        maintenance.set_out_of_service(session, first.id, True, "eng1", "faulty sensor", clock.now())
    AlarmActions(state_db, clock, lambda _e: None).perform(first.id, Action.ACK, "op1", "seen")
    occurrence(engine, service, 600)  # new row: out of service
    co2(engine, service, 800, 1300.0)  # rtn_unack → unack after the on-delay: a repeat, never annunciated
    co2(engine, service, 860, 1300.0)
    first, second = alarms_of(state_db)
    assert (first.out_of_service, second.out_of_service, second.repeat_count) == (False, True, 1)
    assert events[-1].alarm["out_of_service"] is True
    audit = [(action, detail.get("activation")) for action, _, detail in point_audit(state_db, second.id)]
    assert audit == [("alarm.raised", None), ("alarm.out_of_service", "raise"), ("alarm.cleared", None),
                     ("alarm.repeated", None), ("alarm.suppressed", "repeat")]
    with state_db.session() as session:
        kpis = alarm_kpis(session, KpiWindow(T0, T0 + timedelta(hours=1)))
    assert (kpis["activations"], kpis["suppressed"]) == (1, 2)  # only the first raise was shown
