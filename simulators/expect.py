"""Check a scenario's expected signature against the messages a run published.

Works on the published MQTT messages (topics and JSON payloads, decoded here), not on model
internals, so it checks what fmon would receive. Each failed expectation becomes one line that
says what was expected and what was seen.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from core.domain import MetricValue
from core.errors import TopicError
from core.topics import TopicKind, parse_topic
from simulators.gateway import Published
from simulators.scenario import (
    BetweenExpect,
    ConstantExpect,
    CrossesExpect,
    EventExpect,
    FlapsExpect,
    HoldsExpect,
    NoEventExpect,
    ReplayedExpect,
    Scenario,
    SilentExpect,
    StatusExpect,
)
from simulators.timebase import format_duration


@dataclass(frozen=True, slots=True)
class Observed:
    """One reading as fmon would receive it."""

    published_at: datetime
    device_id: str
    ts: datetime
    metrics: dict[str, MetricValue]
    events: tuple[dict[str, Any], ...]
    historical: bool
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class StatusSeen:
    published_at: datetime
    gateway_id: str
    status: str


def observe(published: Iterable[Published]) -> tuple[list[Observed], list[StatusSeen]]:
    """Readings (from telemetry and batch topics) and gateway statuses, in publishing order."""
    readings: list[Observed] = []
    statuses: list[StatusSeen] = []
    for message in published:
        try:
            parsed = parse_topic(message.topic)
        except TopicError:
            continue
        if parsed.kind is TopicKind.GATEWAY_STATUS and parsed.gateway_id:
            statuses.append(StatusSeen(message.at, parsed.gateway_id, message.payload.decode()))
        elif parsed.kind is TopicKind.TELEMETRY and parsed.device is not None:
            readings.append(_observed(message.at, parsed.device.device_id, orjson.loads(message.payload)))
        elif parsed.kind is TopicKind.BATCH:
            for item in orjson.loads(message.payload)["readings"]:
                readings.append(_observed(message.at, item["device_id"], item))
    return readings, statuses


def _observed(at: datetime, device_id: str, body: dict[str, Any]) -> Observed:
    ts = datetime.fromisoformat(body["ts"].replace("Z", "+00:00"))
    return Observed(at, device_id, ts, body["metrics"], tuple(body.get("events", ())), bool(body.get("historical")),
                    body.get("seq"))


def check(scenario: Scenario, start: datetime, published: Sequence[Published]) -> list[str]:
    """The expectations of `scenario` that the run starting at `start` did not meet."""
    readings, statuses = observe(published)
    failures = []
    for index, expectation in enumerate(scenario.expect):
        problem = _check_one(expectation, start, readings, statuses)
        if problem:
            failures.append(f"expect[{index}] ({expectation.check}): {problem}")
    return failures


def _check_one(expect: Any, start: datetime, readings: list[Observed], statuses: list[StatusSeen]) -> str | None:
    if isinstance(expect, StatusExpect):
        return _status(expect, start, statuses)
    mine = [r for r in readings if r.device_id == expect.device]
    check: Callable[[Any, datetime, list[Observed]], str | None] = _CHECKS[type(expect)]
    return check(expect, start, mine)


def _offset(start: datetime, ts: datetime) -> str:
    delta = ts - start
    return format_duration(delta) if delta >= timedelta(0) else f"-{format_duration(-delta)}"


def _window(readings: list[Observed], start: datetime, begin: timedelta, end: timedelta) -> list[Observed]:
    return [r for r in readings if start + begin <= r.ts <= start + end]


def _crosses(expect: CrossesExpect, start: datetime, readings: list[Observed]) -> str | None:
    live = sorted((r for r in readings if not r.historical and expect.metric in r.metrics), key=lambda r: r.ts)
    first = next((r for r in live if _number(r.metrics[expect.metric]) >= expect.above), None)
    wanted = f"{expect.device} {expect.metric} to reach {expect.above} at {format_duration(expect.at)}" \
             f" ± {format_duration(expect.within)}"
    if first is None:
        peak = max((_number(r.metrics[expect.metric]) for r in live), default=None)
        return f"expected {wanted}; it never did (highest {peak})"
    if abs(first.ts - (start + expect.at)) > expect.within:
        return f"expected {wanted}; it first read {first.metrics[expect.metric]} at {_offset(start, first.ts)}"
    return None


def _holds(expect: HoldsExpect, start: datetime, readings: list[Observed]) -> str | None:
    window = [r for r in _window(readings, start, expect.start, expect.until) if not r.historical]
    if not window:
        return f"no live reading of {expect.device} between {format_duration(expect.start)} and " \
               f"{format_duration(expect.until)}"
    wrong = [r for r in window if r.metrics.get(expect.metric) != expect.equals]
    if wrong:
        return f"expected {expect.device} {expect.metric} == {expect.equals!r} from {format_duration(expect.start)} " \
               f"to {format_duration(expect.until)}; at {_offset(start, wrong[0].ts)} it was " \
               f"{wrong[0].metrics.get(expect.metric)!r}"
    return None


def _live_values(expect: Any, start: datetime, readings: list[Observed]) -> list[tuple[datetime, float]]:
    return [(r.ts, _number(r.metrics[expect.metric]))
            for r in _window(readings, start, expect.start, expect.until)
            if not r.historical and expect.metric in r.metrics]


def _between(expect: BetweenExpect, start: datetime, readings: list[Observed]) -> str | None:
    values = _live_values(expect, start, readings)
    if not values:
        return f"no live {expect.metric} of {expect.device} in the window"
    outside = [(ts, v) for ts, v in values if not expect.min <= v <= expect.max]
    if outside:
        ts, value = outside[0]
        return f"expected {expect.device} {expect.metric} within [{expect.min}, {expect.max}] from " \
               f"{format_duration(expect.start)} to {format_duration(expect.until)}; " \
               f"at {_offset(start, ts)} it was {value}"
    return None


def _constant(expect: ConstantExpect, start: datetime, readings: list[Observed]) -> str | None:
    values = _live_values(expect, start, readings)
    if len(values) < 2:
        return f"fewer than two live readings of {expect.device} {expect.metric} in the window"
    distinct = sorted({v for _, v in values})
    if len(distinct) > 1:
        return f"expected {expect.device} {expect.metric} stuck; it took {len(distinct)} values ({distinct[:4]}…)"
    return None


def _flaps(expect: FlapsExpect, start: datetime, readings: list[Observed]) -> str | None:
    sides = [v >= expect.threshold for _, v in sorted(_live_values(expect, start, readings))]
    crossings = sum(a != b for a, b in itertools.pairwise(sides))
    if crossings < expect.min_count:
        return f"expected {expect.device} {expect.metric} to cross {expect.threshold} at least {expect.min_count} " \
               f"times; it crossed {crossings} times"
    return None


def _matching_events(readings: list[Observed], code: str, attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for r in readings for e in r.events
            if e.get("code") == code and all(e.get(k) == v for k, v in attrs.items())]


def _event(expect: EventExpect, start: datetime, readings: list[Observed]) -> str | None:
    found = _matching_events(_window(readings, start, expect.start, expect.until), expect.code, expect.attrs)
    if len(found) < expect.min_count:
        return f"expected {expect.min_count}× event {expect.code} {expect.attrs or ''} from {expect.device} between " \
               f"{format_duration(expect.start)} and {format_duration(expect.until)}; saw {len(found)}"
    return None


def _no_event(expect: NoEventExpect, start: datetime, readings: list[Observed]) -> str | None:
    found = _matching_events(_window(readings, start, expect.start, expect.until), expect.code, {})
    if found:
        return f"expected no event {expect.code} from {expect.device}; saw {len(found)}"
    return None


def _silent(expect: SilentExpect, start: datetime, readings: list[Observed]) -> str | None:
    live = [r for r in _window(readings, start, expect.start, expect.until) if not r.historical]
    if live:
        return f"expected no live reading of {expect.device} between {format_duration(expect.start)} and " \
               f"{format_duration(expect.until)}; saw {len(live)}, the first at {_offset(start, live[0].ts)}"
    return None


def _replayed(expect: ReplayedExpect, start: datetime, readings: list[Observed]) -> str | None:
    window = _window(readings, start, expect.start, expect.until)
    if not window:
        return f"no reading of {expect.device} stamped between {format_duration(expect.start)} and " \
               f"{format_duration(expect.until)} arrived at all"
    live = [r for r in window if not r.historical]
    if live:
        return f"{len(live)} readings of {expect.device} in the window arrived live, not as historical replay"
    return None


def _status(expect: StatusExpect, start: datetime, statuses: list[StatusSeen]) -> str | None:
    target = start + expect.at
    seen = [s for s in statuses if s.gateway_id == expect.gateway and s.status == expect.status]
    if not any(abs(s.published_at - target) <= expect.within for s in seen):
        times = ", ".join(_offset(start, s.published_at) for s in seen) or "never"
        return f"expected gateway {expect.gateway} {expect.status} at {format_duration(expect.at)}; seen at {times}"
    return None


_CHECKS: dict[type, Callable[[Any, datetime, list[Observed]], str | None]] = {
    CrossesExpect: _crosses, HoldsExpect: _holds, BetweenExpect: _between, ConstantExpect: _constant,
    FlapsExpect: _flaps, EventExpect: _event, NoEventExpect: _no_event, SilentExpect: _silent,
    ReplayedExpect: _replayed,
}


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")
