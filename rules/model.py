"""Rule definitions (validated, frozen) and the condition changes the engine produces.

A rule = a *condition* (its `kind`: threshold, band, rate, state, event, count, offline,
composite, zone, anomaly) evaluated per source, plus the alarm timing all kinds share:
on-delay, off-delay, an optional schedule that arms the rule only in some local-time windows,
and grade escalation while active. Rules are written as YAML (see `rules.loader`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from core.domain import DeviceRef, Family, Grade

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def _duration(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"invalid duration {value!r}: use e.g. 30s, 10m, 4h, 1d")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Scalar = float | int | bool | str
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- clauses: predicates over a device's latest values -------------------------------------------

class Compare(_Frozen):
    """`metric op value`, e.g. lel_pct >= 50."""

    metric: str
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: Scalar

    def test(self, values: dict[str, Any]) -> bool | None:
        current = values.get(self.metric)
        if current is None:
            return None
        try:
            return COMPARE[self.op](current, self.value)
        except TypeError:
            return False


class AllOf(_Frozen):
    all: tuple[Clause, ...] = Field(min_length=1)

    def test(self, values: dict[str, Any]) -> bool | None:
        results = [c.test(values) for c in self.all]
        return None if None in results else all(results)


class AnyOf(_Frozen):
    any: tuple[Clause, ...] = Field(min_length=1)

    def test(self, values: dict[str, Any]) -> bool | None:
        results = [c.test(values) for c in self.any]
        if any(r is True for r in results):
            return True
        return None if None in results else False


class NotOf(_Frozen):
    not_: Clause = Field(alias="not")

    def test(self, values: dict[str, Any]) -> bool | None:
        result = self.not_.test(values)
        return None if result is None else not result


Clause = Compare | AllOf | AnyOf | NotOf


# --- condition kinds -------------------------------------------------------------------------------

class Threshold(_Frozen):
    """`metric op limit`; once true, false again only past the limit by `deadband`."""

    kind: Literal["threshold"]
    metric: str
    op: Literal[">", ">=", "<", "<="]
    limit: float
    deadband: float = Field(default=0.0, ge=0)

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric,)


class Band(_Frozen):
    """Outside [low, high]; back inside by `deadband` to clear."""

    kind: Literal["band"]
    metric: str
    low: float
    high: float
    deadband: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric,)


class Rate(_Frozen):
    """The change of `metric` over `window` compared with `limit` (e.g. change < 0: a
    cumulative register went backwards; change > 5: a jump)."""

    kind: Literal["rate"]
    metric: str
    window: Duration
    op: Literal[">", ">=", "<", "<="]
    limit: float

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric,)


class State(_Frozen):
    """A discrete value: `equals` one of `values`, or `bit` n set in an integer status word."""

    kind: Literal["state"]
    metric: str
    values: tuple[Scalar, ...] = ()
    bit: int | None = Field(default=None, ge=0, le=63)

    @model_validator(mode="after")
    def _one(self) -> State:
        if bool(self.values) == (self.bit is not None):
            raise ValueError("give either values or bit")
        return self

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric,)


class EventMatch(_Frozen):
    """One of `codes` reported; the condition holds `hold` after the last one."""

    kind: Literal["event"]
    codes: tuple[str, ...] = Field(min_length=1)
    attrs: dict[str, Scalar] = Field(default_factory=dict)
    hold: Duration = timedelta(minutes=5)

    @property
    def metrics(self) -> tuple[str, ...]:
        return ()


class Count(_Frozen):
    """At least `at_least` of `codes` events (distinct by `distinct` attribute if given) within
    `window`, optionally per `group_by` attribute (e.g. per fire zone)."""

    kind: Literal["count"]
    codes: tuple[str, ...] = Field(min_length=1)
    attrs: dict[str, tuple[Scalar, ...]] = Field(default_factory=dict)
    window: Duration
    at_least: int = Field(ge=1)
    distinct: str | None = None
    group_by: str | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        return ()


class Offline(_Frozen):
    """The device (or, with `gateway: true`, the gateway) is offline: silent or its Will fired."""

    kind: Literal["offline"]
    gateway: bool = False

    @property
    def metrics(self) -> tuple[str, ...]:
        return ()


class SeqGap(_Frozen):
    """Messages lost on the way: at least `at_least` readings missing, by the device's `seq`
    counter, within `window` (a counter that goes back is a restart of the device, not a gap)."""

    kind: Literal["seq_gap"]
    window: Duration
    at_least: int = Field(ge=1)

    @property
    def metrics(self) -> tuple[str, ...]:
        return ()


class Composite(_Frozen):
    """A clause over the device's latest values (AND/OR/NOT across its metrics)."""

    kind: Literal["composite"]
    when: Clause

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(sorted(_clause_metrics(self.when)))


class Zone(_Frozen):
    """At least `at_least` devices of one zone satisfy `when` at the same time."""

    kind: Literal["zone"]
    when: Clause
    at_least: int = Field(default=2, ge=1)

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(sorted(_clause_metrics(self.when)))


class Anomaly(_Frozen):
    """`metric` further than `z` standard deviations from the device's own recent baseline."""

    kind: Literal["anomaly"]
    metric: str
    samples: int = Field(default=288, ge=10, le=100_000)
    min_samples: int = Field(default=30, ge=5)
    z: float = Field(default=4.0, gt=0)

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric,)


Condition = Annotated[
    Threshold | Band | Rate | State | EventMatch | Count | Offline | SeqGap | Composite | Zone | Anomaly,
    Field(discriminator="kind"),
]
KINDS = ("threshold", "band", "rate", "state", "event", "count", "offline", "seq_gap", "composite", "zone",
         "anomaly")


def _clause_metrics(clause: Clause) -> set[str]:
    if isinstance(clause, Compare):
        return {clause.metric}
    if isinstance(clause, AllOf):
        return set().union(*(_clause_metrics(c) for c in clause.all))
    if isinstance(clause, AnyOf):
        return set().union(*(_clause_metrics(c) for c in clause.any))
    return _clause_metrics(clause.not_)


# --- timing shared by all kinds --------------------------------------------------------------------

class Window(_Frozen):
    """A local-time window; `start` > `end` wraps midnight (22:00-06:00)."""

    start: time
    end: time
    days: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)  # Monday = 0

    def contains(self, local: datetime) -> bool:
        t = local.time()
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= t < self.end
        if t >= self.start:
            return local.weekday() in self.days
        return (local.weekday() - 1) % 7 in self.days and t < self.end


class Schedule(_Frozen):
    """When the rule is armed; outside every window its condition counts as false."""

    timezone: str = "Asia/Shanghai"
    windows: tuple[Window, ...] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class Escalation(_Frozen):
    """While the alarm stays active for `after`, its grade becomes `grade`."""

    after: Duration
    grade: Grade


class Level(_Frozen):
    """While the alarm is active and its value is at or past `above` (or `below`), its grade is
    `grade`; when the value eases, the grade falls back only after `Rule.level_hold`."""

    above: float | None = None
    below: float | None = None
    grade: Grade

    @model_validator(mode="after")
    def _one_bound(self) -> Level:
        if (self.above is None) == (self.below is None):
            raise ValueError("a level needs exactly one of above or below")
        return self

    def matches(self, value: float) -> bool:
        return value >= self.above if self.above is not None else value <= self.below  # type: ignore[operator]


# --- the rule --------------------------------------------------------------------------------------

class Rule(_Frozen):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,127}$")
    family: Family
    kinds_of: tuple[str, ...] = Field(default=(), alias="device_kinds")  # e.g. meter kinds: water, gas
    condition: Condition
    category: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    grade: Grade
    playbook: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    message_zh: str = Field(min_length=1)
    message_en: str = Field(min_length=1)
    cite: str = Field(min_length=1, description="the standard or source the rule follows")
    on_delay: Duration = timedelta(0)
    off_delay: Duration = timedelta(0)
    schedule: Schedule | None = None
    escalate: tuple[Escalation, ...] = ()
    levels: tuple[Level, ...] = ()
    level_hold: Duration = timedelta(minutes=5)
    latching: bool = False
    enabled: bool = True

    @field_validator("escalate")
    @classmethod
    def _escalation_rises(cls, steps: tuple[Escalation, ...]) -> tuple[Escalation, ...]:
        if list(steps) != sorted(steps, key=lambda s: s.after):
            raise ValueError("escalation steps must be in order of time")
        return steps

    @model_validator(mode="after")
    def _escalation_more_severe(self) -> Rule:
        steps: list[Escalation | Level] = [*self.escalate, *self.levels]
        for step in steps:
            if step.grade >= self.grade:
                raise ValueError(f"escalation to grade {int(step.grade)} is not more severe than {int(self.grade)}")
        return self

    def message(self, lang: str, **values: Any) -> str:
        template = self.message_zh if lang == "zh" else self.message_en
        try:
            return template.format(**values)
        except (KeyError, IndexError, ValueError, TypeError):  # e.g. {value:.1f} with no value
            plain = re.sub(r"\{(\w+)(?:![rsa])?(?::[^{}]*)?\}", r"{\1}", template)  # drop format specs
            return plain.format_map(_Blank(values))


# --- what the engine produces ----------------------------------------------------------------------

class ChangeKind(StrEnum):
    RAISE = "raise"
    CLEAR = "clear"
    REGRADE = "regrade"


@dataclass(frozen=True, slots=True)
class Source:
    """What an alarm is about: a device, a gateway (family "gateway"), or a zone of a device."""

    site: str
    family: str
    id: str
    group: str | None = None  # e.g. the fire zone for per-zone rules

    @property
    def key(self) -> str:
        base = f"{self.site}/{self.family}/{self.id}"
        return f"{base}#{self.group}" if self.group else base

    @classmethod
    def of(cls, device: DeviceRef, group: str | None = None) -> Source:
        return cls(device.site, device.family.value, device.device_id, group)


@dataclass(frozen=True, slots=True)
class ConditionChange:
    """A rule's alarm became active (raise), inactive (clear) or changed grade, for a source."""

    kind: ChangeKind
    rule: Rule
    source: Source
    at: datetime
    value: float | str | bool | None
    grade: Grade

    def message(self, lang: str) -> str:
        return self.rule.message(lang, device=self.source.id, site=self.source.site, value=self.value,
                                 zone=self.source.group or "", **_limits(self.rule))


class _Blank(dict[str, Any]):
    """Formats every placeholder as plain text, for values a format spec does not fit."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__({k: "" if v is None else str(v) for k, v in values.items()})

    def __missing__(self, key: str) -> str:
        return "?"


def _limits(rule: Rule) -> dict[str, Any]:
    condition = rule.condition
    return {name: getattr(condition, name) for name in ("limit", "low", "high", "at_least")
            if hasattr(condition, name)}


Rule.model_rebuild()
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()
