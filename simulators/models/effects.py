"""Effects a scenario lays over a device's own values: hold, ramp, stuck, drift, flap.

A device model computes what the physics says; an effect then replaces or shifts one metric
for a while (a faulty sensor, a forced value, a leak ramp). Effects are applied in
`DeviceModel.sample`, after the model and before the values are fitted to the schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from core.domain import MetricValue


class Effect(Protocol):
    def apply(self, ts: datetime, value: MetricValue | None) -> MetricValue | None:
        """The metric's value at `ts` given the model's own `value` (None: the model has none)."""
        ...

    def expired(self, ts: datetime) -> bool: ...


@dataclass
class Hold:
    """The metric reads `value` until `until` (forever when None)."""

    value: MetricValue
    until: datetime | None = None

    def apply(self, ts: datetime, value: MetricValue | None) -> MetricValue | None:  # noqa: ARG002
        return self.value

    def expired(self, ts: datetime) -> bool:
        return self.until is not None and ts >= self.until


@dataclass
class Ramp:
    """Linear from the value at `start` (or `origin`) to `target` over `over`, then held.

    The linear shape is on purpose: a scenario can state when a threshold is crossed.
    """

    start: datetime
    over: timedelta
    target: float
    origin: float | None = None
    until: datetime | None = None

    def apply(self, ts: datetime, value: MetricValue | None) -> MetricValue | None:
        if self.origin is None:
            self.origin = _number(value)
        span = self.over.total_seconds()
        fraction = 1.0 if span <= 0 else min(1.0, max(0.0, (ts - self.start).total_seconds() / span))
        return self.origin + (self.target - self.origin) * fraction

    def expired(self, ts: datetime) -> bool:
        return self.until is not None and ts >= self.until


@dataclass
class Stuck:
    """The sensor repeats the first value it reads after `start` (a frozen sensor)."""

    until: datetime | None = None
    frozen: MetricValue | None = None

    def apply(self, ts: datetime, value: MetricValue | None) -> MetricValue | None:  # noqa: ARG002
        if self.frozen is None:
            self.frozen = value
        return self.frozen

    def expired(self, ts: datetime) -> bool:
        return self.until is not None and ts >= self.until


@dataclass
class Drift:
    """Adds `per_hour` × hours since `start`: a sensor losing its calibration."""

    start: datetime
    per_hour: float
    until: datetime | None = None

    def apply(self, ts: datetime, value: MetricValue | None) -> MetricValue | None:
        hours = max(0.0, (ts - self.start).total_seconds() / 3600)
        return _number(value) + self.per_hour * hours

    def expired(self, ts: datetime) -> bool:
        return self.until is not None and ts >= self.until


@dataclass
class Flap:
    """Alternates between `values` every `period` from `start`: a chattering contact or reading."""

    start: datetime
    period: timedelta
    values: tuple[MetricValue, ...]
    until: datetime | None = None

    def apply(self, ts: datetime, value: MetricValue | None) -> MetricValue | None:  # noqa: ARG002
        index = int((ts - self.start).total_seconds() // max(self.period.total_seconds(), 1e-3))
        return self.values[index % len(self.values)]

    def expired(self, ts: datetime) -> bool:
        return self.until is not None and ts >= self.until


def _number(value: MetricValue | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)
