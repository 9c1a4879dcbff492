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


ACTIONS: dict[str, Callable[[Alarm], None]] = {
    "ack": lambda a: lifecycle.ack(a, "op", NOW),
    "reset": lifecycle.reset,
    "unshelve": lambda a: lifecycle.unshelve(a, NOW),
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_refused_action_changes_nothing(state: str, action: str) -> None:
    a = alarm(state)
    before = (a.state, a.acked_by, a.shelved_until, a.condition_active)
    try:
        ACTIONS[action](a)
    except TransitionRefused:
        assert (a.state, a.acked_by, a.shelved_until, a.condition_active) == before
