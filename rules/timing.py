"""Alarm timing shared by every rule kind: on-delay, off-delay and grade escalation.

`Timing` is the durable per-(rule, source) state; `step` applies a new condition value at a
time, `due` fires what time alone makes happen (a pending on-delay or off-delay that ran out,
an escalation step). Raise and clear times are exact: a pending on-delay fires at
`pending_since + on_delay`, whenever the tick that notices it comes (also after a restart).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from core.domain import Grade
from rules.model import ChangeKind, Rule

Fired = list[tuple[ChangeKind, datetime, Grade]]


@dataclass
class Timing:
    condition: bool | None = None
    active: bool = False
    pending_since: float | None = None  # epoch seconds, for JSON
    clearing_since: float | None = None
    raised_at: float | None = None
    grade: int | None = None
    value: Any = None
    lower_since: float | None = None  # the value eased below the current level at this time

    def to_json(self) -> dict[str, Any]:
        # Every field is a scalar; dataclasses.asdict deep-copies and cost more than the rules
        # themselves when many devices have live state.
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timing:
        return cls(**data)

    def waiting(self, rule: Rule) -> bool:
        """Something may happen with time alone (for the tick's shortlist)."""
        if self.pending_since is not None or self.clearing_since is not None:
            return True
        if not self.active or self.grade is None:
            return False
        return bool(rule.levels) or any(s.grade < self.grade for s in rule.escalate)


_FIELDS = tuple(f.name for f in fields(Timing))


def step(rule: Rule, t: Timing, condition: bool | None, value: Any, at: datetime) -> Fired:
    # What ran out before this observation fires first: a backlog replayed after a restart
    # arrives without ticks in between, and must not cancel a delay that already expired.
    fired = due(rule, t, at)
    if condition is None:
        return fired
    t.condition, t.value = condition, value
    stamp = at.timestamp()
    if condition:
        t.clearing_since = None
        if not t.active and t.pending_since is None:
            t.pending_since = stamp
    else:
        t.pending_since = None
        if t.active and t.clearing_since is None:
            t.clearing_since = stamp
    return fired + due(rule, t, at)


def due(rule: Rule, t: Timing, now: datetime) -> Fired:
    fired: Fired = []
    on, off = rule.on_delay.total_seconds(), rule.off_delay.total_seconds()
    stamp = now.timestamp()
    if not t.active and t.pending_since is not None and stamp - t.pending_since >= on:
        raised = t.pending_since + on
        t.active, t.pending_since, t.raised_at, t.grade = True, None, raised, int(rule.grade)
        fired.append((ChangeKind.RAISE, _time(raised), rule.grade))
    if t.active and t.clearing_since is not None and stamp - t.clearing_since >= off:
        cleared, grade = t.clearing_since + off, Grade(t.grade or rule.grade)  # the grade it reached
        t.active, t.clearing_since, t.raised_at, t.grade = False, None, None, None
        fired.append((ChangeKind.CLEAR, _time(cleared), grade))
    if t.active:
        fired.extend(_escalate(rule, t, stamp))
    return fired


def _escalate(rule: Rule, t: Timing, stamp: float) -> Fired:
    """Time steps rise at their own time; value levels rise at once and fall only after the
    value has stayed below the level for `rule.level_hold`."""
    fired: Fired = []
    assert t.raised_at is not None and t.grade is not None
    for escalation in rule.escalate:
        at = t.raised_at + escalation.after.total_seconds()
        if stamp >= at and escalation.grade < t.grade:
            t.grade = int(escalation.grade)
            fired.append((ChangeKind.REGRADE, _time(at), escalation.grade))
    if rule.levels:
        fired.extend(_follow_levels(rule, t, stamp))
    return fired


def _follow_levels(rule: Rule, t: Timing, stamp: float) -> Fired:
    assert t.raised_at is not None and t.grade is not None
    target = min([int(e.grade) for e in rule.escalate if stamp >= t.raised_at + e.after.total_seconds()]
                 + [int(level.grade) for level in rule.levels if _number(t.value) is not None
                    and level.matches(_number(t.value))]  # type: ignore[arg-type]
                 + [int(rule.grade)])
    if target < t.grade:
        t.grade, t.lower_since = target, None
        return [(ChangeKind.REGRADE, _time(stamp), Grade(target))]
    if target == t.grade:
        t.lower_since = None
        return []
    if t.lower_since is None:
        t.lower_since = stamp
    hold = rule.level_hold.total_seconds()
    if stamp - t.lower_since < hold:
        return []
    at, t.grade, t.lower_since = t.lower_since + hold, target, None
    return [(ChangeKind.REGRADE, _time(at), Grade(target))]


def _number(value: Any) -> float | None:
    return None if isinstance(value, bool) or not isinstance(value, int | float) else float(value)


def _time(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)
