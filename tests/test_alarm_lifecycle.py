"""The ISA-18.2 state machine, exhaustively: every action from every state, allowed or refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from alarms import lifecycle
from alarms.lifecycle import InvalidRequest, TransitionRefused
from storage.state.models import Alarm

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
STATES = ["unack", "acked", "rtn_unack", "normal"]


def alarm(state: str, *, latching: bool = False, condition: bool | None = None) -> Alarm:
    active = state in ("unack", "acked") if condition is None else condition
    return Alarm(id=1, state=state, latching=latching, condition_active=active, shelved_until=None)


ACK_RESULTS = {"unack": "acked", "acked": None, "rtn_unack": "normal", "normal": None}


@pytest.mark.parametrize("state", STATES)
def test_ack_from_every_state(state: str) -> None:
    a = alarm(state)
    expected = ACK_RESULTS[state]
    if expected is None:
        with pytest.raises(TransitionRefused, match="nothing to acknowledge"):
            lifecycle.ack(a, "op1", NOW)
        assert a.state == state
    else:
        lifecycle.ack(a, "op1", NOW)
        assert (a.state, a.acked_by, a.acked_at) == (expected, "op1", NOW)


@pytest.mark.parametrize(("state", "after"), [("unack", "rtn_unack"), ("acked", "normal")])
def test_process_clear_of_a_plain_alarm(state: str, after: str) -> None:
    a = alarm(state)
    assert lifecycle.process_clear(a, NOW)
    assert (a.state, a.condition_active, a.cleared_at) == (after, False, NOW)


@pytest.mark.parametrize("state", ["unack", "acked"])
def test_latching_alarm_stays_until_reset(state: str) -> None:
    a = alarm(state, latching=True)
    assert not lifecycle.process_clear(a, NOW)
    assert (a.state, a.condition_active) == (state, False)


def test_condition_returning_reactivates_rtn_unack() -> None:
    a = alarm("rtn_unack")
    lifecycle.process_return(a)
    assert (a.state, a.condition_active, a.cleared_at) == ("unack", True, None)


@pytest.mark.parametrize(("state", "latching", "condition", "refusal"), [
    ("acked", True, False, None),
    ("unack", True, False, "acknowledge it before the reset"),
    ("acked", True, True, "still present"),
    ("unack", True, True, "still present"),
    ("acked", False, True, "not latching"),
    ("rtn_unack", False, False, "not latching"),
    ("normal", False, False, "not latching"),
])
def test_reset(state: str, latching: bool, condition: bool, refusal: str | None) -> None:
    a = alarm(state, latching=latching, condition=condition)
    if refusal is None:
        lifecycle.reset(a)
        assert a.state == "normal"
    else:
        with pytest.raises(TransitionRefused, match=refusal):
            lifecycle.reset(a)
        assert a.state == state


@pytest.mark.parametrize("state", STATES)
def test_shelve_and_unshelve_from_every_state(state: str) -> None:
    a = alarm(state)
    until = NOW + timedelta(hours=2)
    if state == "normal":
        with pytest.raises(TransitionRefused, match="nothing to shelve"):
            lifecycle.shelve(a, "op1", "maintenance", until, NOW)
        return
    lifecycle.shelve(a, "op1", "sensor being replaced", until, NOW)
    assert lifecycle.is_shelved(a, NOW) and not lifecycle.is_shelved(a, until)
    assert (a.shelved_by, a.shelve_reason, a.state) == ("op1", "sensor being replaced", state)
    lifecycle.unshelve(a, NOW)
    assert not lifecycle.is_shelved(a, NOW)
    with pytest.raises(TransitionRefused, match="not shelved"):
        lifecycle.unshelve(a, NOW)


@pytest.mark.parametrize(("reason", "until", "error"), [
    ("", NOW + timedelta(hours=1), "reason is required"),
    ("   ", NOW + timedelta(hours=1), "reason is required"),
    ("ok", NOW - timedelta(minutes=1), "future"),
    ("ok", NOW + timedelta(hours=8, seconds=1), "limited to 8:00:00"),
])
def test_shelve_needs_a_reason_and_a_bounded_future_time(reason: str, until: datetime, error: str) -> None:
    with pytest.raises(InvalidRequest, match=error):
        lifecycle.shelve(alarm("unack"), "op1", reason, until, NOW)


def test_shelve_maximum_is_configurable() -> None:
    a = alarm("unack")
    lifecycle.shelve(a, "op1", "night works", NOW + timedelta(hours=12), NOW, max_shelve=timedelta(hours=12))
    assert a.shelved_until == NOW + timedelta(hours=12)


# --- the whole table: every (state, action or process event) → new state, or refused -------------
# Alarm configurations: (state, latching, condition present).
CONFIGS = {
    "unack": ("unack", False, True), "acked": ("acked", False, True),
    "rtn_unack": ("rtn_unack", False, False), "normal": ("normal", False, False),
    "unack, latching, present": ("unack", True, True), "acked, latching, present": ("acked", True, True),
    "unack, latched": ("unack", True, False), "acked, latched": ("acked", True, False),
}
R = None  # refused: TransitionRefused, nothing changes
TABLE: dict[str, list[str | None]] = {  # one column per configuration, in CONFIGS order
    "ack": ["acked", R, "normal", R, "acked", R, "acked", R],
    "reset": [R, R, R, R, R, R, R, "normal"],
    "shelve": ["unack", "acked", "rtn_unack", R, "unack", "acked", "unack", "acked"],
    "unshelve": [R, R, R, R, R, R, R, R],  # nothing is shelved (the held variants below change this)
    "clear": ["rtn_unack", "normal", "rtn_unack", "normal", "unack", "acked", "unack", "acked"],
    "return": ["unack", "acked", "unack", "normal", "unack", "acked", "unack", "acked"],
}
UNTIL = NOW + timedelta(hours=2)
EVENTS: dict[str, Callable[[Alarm], object]] = {
    "ack": lambda a: lifecycle.ack(a, "op", NOW),
    "reset": lifecycle.reset,
    "shelve": lambda a: lifecycle.shelve(a, "op", "night", UNTIL, NOW),
    "unshelve": lambda a: lifecycle.unshelve(a, NOW),
    "clear": lambda a: lifecycle.process_clear(a, NOW),
    "return": lifecycle.process_return,
}
# Orthogonal states: they never change what the state machine allows, only shelving is undone.
HELD: dict[str, dict[str, object]] = {
    "shown": {}, "shelved": {"shelved_until": NOW + timedelta(hours=1), "shelved_by": "op0", "shelve_reason": "x"},
    "suppressed": {"suppressed_by": "maintenance:1"}, "out of service": {"out_of_service": True},
}
CASES = [(event, config, held) for event in TABLE for config in CONFIGS for held in HELD]


def held_alarm(config: str, held: str) -> Alarm:
    state, latching, condition = CONFIGS[config]
    fields: dict[str, object] = {"shelved_until": None, "shelved_by": None, "shelve_reason": None,
                                 "suppressed_by": None, "out_of_service": False, **HELD[held]}
    return Alarm(id=1, state=state, latching=latching, condition_active=condition, **fields)


def snapshot(a: Alarm) -> tuple[object, ...]:
    return (a.state, a.acked_by, a.condition_active, a.shelved_until, a.shelved_by, a.suppressed_by,
            a.out_of_service)


def expected_state(event: str, config: str, held: str) -> str | None:
    if event == "unshelve" and held == "shelved":
        return CONFIGS[config][0]  # undoes the shelve, whatever the state
    return TABLE[event][list(CONFIGS).index(config)]


@pytest.mark.parametrize(("event", "config", "held"), CASES, ids=[f"{e}:{c}:{h}" for e, c, h in CASES])
def test_every_action_and_event_from_every_state(event: str, config: str, held: str) -> None:
    a = held_alarm(config, held)
    before = snapshot(a)
    expected = expected_state(event, config, held)
    if expected is None:
        with pytest.raises(TransitionRefused):
            EVENTS[event](a)
        assert snapshot(a) == before  # a refused action changes nothing
        return
    EVENTS[event](a)
    assert a.state == expected
    assert (a.suppressed_by, a.out_of_service) == (before[5], before[6])  # orthogonal: untouched
    shelved = {"shelve": UNTIL, "unshelve": None}.get(event, before[3])
    assert a.shelved_until == shelved
    if event == "ack":
        assert (a.acked_by, a.acked_at) == ("op", NOW)
    if event in ("clear", "return"):
        assert a.condition_active is (event == "return")


def test_the_table_covers_every_state_and_action() -> None:
    assert {c[0] for c in CONFIGS.values()} == set(STATES)
    assert all(len(column) == len(CONFIGS) for column in TABLE.values())
    assert set(TABLE) == set(EVENTS)
