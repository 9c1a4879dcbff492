"""Threshold evaluation with on-delay and deadband, as pure functions.

State per (rule, source) is a small frozen value; `evaluate` and `tick` return the new state
and the changes. The on-delay counts from the reading time at which the limit was first
breached; a tick fires it when no newer reading has arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from core.domain import DeviceRef, Reading
from rules.model import ChangeKind, ConditionChange, ThresholdRule


@dataclass(frozen=True, slots=True)
class ThresholdState:
    active: bool = False
    breached_since: datetime | None = None
    last_value: float | None = None


Result = tuple[ThresholdState, list[ConditionChange]]


def evaluate(rule: ThresholdRule, state: ThresholdState, reading: Reading) -> Result:
    """Apply one reading carrying `rule.metric`."""
    value = reading.metrics.get(rule.metric)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return state, []
    value = float(value)
    if state.active:
        if rule.cleared(value):
            change = ConditionChange(ChangeKind.CLEAR, rule, reading.device, reading.ts, value)
            return ThresholdState(last_value=value), [change]
        return replace(state, last_value=value), []
    if not rule.breached(value):
        return ThresholdState(last_value=value), []
    since = state.breached_since or reading.ts
    return _maybe_fire(rule, ThresholdState(False, since, value), reading.device, reading.ts)


def tick(rule: ThresholdRule, state: ThresholdState, source: DeviceRef, now: datetime) -> Result:
    """Fire a pending on-delay whose time has come although no new reading arrived."""
    if state.active or state.breached_since is None:
        return state, []
    return _maybe_fire(rule, state, source, now)


def _maybe_fire(rule: ThresholdRule, state: ThresholdState, source: DeviceRef, now: datetime) -> Result:
    assert state.breached_since is not None
    if now - state.breached_since < rule.on_delay:
        return state, []
    change = ConditionChange(ChangeKind.RAISE, rule, source, now, state.last_value)
    return ThresholdState(True, None, state.last_value), [change]
