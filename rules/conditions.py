"""Condition evaluation per kind: pure functions of (rule condition, state, observation).

Each returns the condition (True/False, or None when the observation says nothing about it)
and the value to report. State is a plain dict so that it can be saved as JSON and survive a
restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.domain import Event, MetricValue
from rules.model import COMPARE, Anomaly, Band, Composite, Count, EventMatch, Rate, SeqGap, State, Threshold

Result = tuple[bool | None, Any]
CondState = dict[str, Any]


def threshold(c: Threshold, st: CondState, values: Mapping[str, MetricValue]) -> Result:
    """`st["on"]`: the alarm is active, so clearing needs the deadband."""
    value = _number(values.get(c.metric))
    if value is None:
        return None, None
    breached = COMPARE[c.op](value, c.limit)
    if st.get("on") and not breached:
        rising = c.op in (">", ">=")
        back = c.limit - c.deadband if rising else c.limit + c.deadband
        breached = not (value < back if rising else value > back)  # still inside the deadband
    st["on"] = breached
    return breached, value


def band(c: Band, st: CondState, values: Mapping[str, MetricValue]) -> Result:
    value = _number(values.get(c.metric))
    if value is None:
        return None, None
    outside = value < c.low or value > c.high
    if st.get("on") and not outside:
        outside = not (c.low + c.deadband <= value <= c.high - c.deadband)
    st["on"] = outside
    return outside, value


def rate(c: Rate, st: CondState, values: Mapping[str, MetricValue], at: datetime) -> Result:
    value = _number(values.get(c.metric))
    if value is None:
        return None, None
    now = at.timestamp()
    history: list[list[float]] = st.setdefault("h", [])
    history.append([now, value])
    horizon = now - c.window.total_seconds()
    while len(history) > 2 and history[1][0] <= horizon:
        history.pop(0)  # keep one sample at or before the window's start as the baseline
    if len(history) < 2:
        return None, None
    change = value - history[0][1]
    return COMPARE[c.op](change, c.limit), round(change, 6)


def state(c: State, values: Mapping[str, MetricValue]) -> Result:
    value = values.get(c.metric)
    if value is None:
        return None, None
    if c.bit is not None:
        return isinstance(value, int) and not isinstance(value, bool) and bool(value >> c.bit & 1), value
    return value in c.values, value


def composite(c: Composite, values: Mapping[str, MetricValue]) -> Result:
    return c.when.test(dict(values)), None


def event(c: EventMatch, st: CondState, events: tuple[Event, ...], at: datetime) -> Result:
    hits = [e for e in events if e.code in c.codes and _attrs_match(e, {k: (v,) for k, v in c.attrs.items()})]
    if hits:
        st["last"] = at.timestamp()
        st["code"] = hits[-1].code
    return event_at(c, st, at)


def event_at(c: EventMatch, st: CondState, now: datetime) -> Result:
    last = st.get("last")
    if last is None:
        return False, None
    return now.timestamp() - last < c.hold.total_seconds(), st.get("code")


def count(c: Count, st: CondState, event: Event | None, at: datetime) -> Result:
    """Add `event` (already matched to this rule and group) and count within the window."""
    hits: list[list[Any]] = st.setdefault("hits", [])
    if event is not None:
        hits.append([at.timestamp(), str(event.attrs.get(c.distinct, "")) if c.distinct else len(hits)])
    return count_at(c, st, at)


def count_at(c: Count, st: CondState, now: datetime) -> Result:
    hits: list[list[Any]] = st.setdefault("hits", [])
    horizon = now.timestamp() - c.window.total_seconds()
    hits[:] = [h for h in hits if h[0] > horizon]
    seen = len({h[1] for h in hits}) if c.distinct else len(hits)
    return seen >= c.at_least, seen


def seq_gap(c: SeqGap, st: CondState, missing: int, at: datetime) -> Result:
    """Record `missing` readings lost just before the reading at `at`."""
    st.setdefault("gaps", []).append([at.timestamp(), missing])
    return seq_gap_at(c, st, at)


def seq_gap_at(c: SeqGap, st: CondState, now: datetime) -> Result:
    gaps: list[list[float]] = st.setdefault("gaps", [])
    horizon = now.timestamp() - c.window.total_seconds()
    gaps[:] = [g for g in gaps if g[0] > horizon]
    missing = int(sum(g[1] for g in gaps))
    return missing >= c.at_least, missing


def count_matches(c: Count, e: Event) -> bool:
    return e.code in c.codes and _attrs_match(e, c.attrs)


def anomaly(c: Anomaly, st: CondState, values: Mapping[str, MetricValue]) -> Result:
    """Rolling mean and variance over the last `samples` values (running sums, O(1) per value)."""
    value = _number(values.get(c.metric))
    if value is None:
        return None, None
    buf: list[float] = st.setdefault("buf", [])
    n, total, squares = len(buf), st.get("sum", 0.0), st.get("sq", 0.0)
    result: bool | None = None
    if n >= c.min_samples:
        mean = total / n
        std = max(squares / n - mean * mean, 0.0) ** 0.5
        result = std > 0 and abs(value - mean) > c.z * std
    buf.append(value)
    total, squares = total + value, squares + value * value
    if len(buf) > c.samples:
        old = buf.pop(0)
        total, squares = total - old, squares - old * old
    st["sum"], st["sq"] = total, squares
    return result, value


def _attrs_match(e: Event, wanted: Mapping[str, tuple[Any, ...]]) -> bool:
    return all(e.attrs.get(key) in allowed for key, allowed in wanted.items())


def _number(value: MetricValue | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)

