"""Rule definitions and the condition changes rules produce."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core.domain import DeviceRef, Family, Grade, validate_id

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


class ChangeKind(StrEnum):
    RAISE = "raise"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class ConditionChange:
    """A rule's condition became true (raise) or false (clear) for one source."""

    kind: ChangeKind
    rule: ThresholdRule
    source: DeviceRef
    at: datetime
    value: float | None

    def message(self, lang: str) -> str:
        template = self.rule.message_zh if lang == "zh" else self.rule.message_en
        return template.format(device=self.source.device_id, site=self.source.site,
                               value=self.value, limit=self.rule.limit)


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """`metric op limit` held for `on_delay`; clears once back past the limit by `deadband`."""

    id: str
    family: Family
    metric: str
    op: str
    limit: float
    grade: Grade
    category: str
    message_zh: str
    message_en: str
    on_delay: timedelta = timedelta(0)
    deadband: float = 0.0

    def __post_init__(self) -> None:
        validate_id(self.id.replace(".", "_"), "rule id")
        if self.op not in _COMPARE:
            raise ValueError(f"rule {self.id}: op must be one of {', '.join(_COMPARE)}, got {self.op!r}")
        if self.deadband < 0 or self.on_delay < timedelta(0):
            raise ValueError(f"rule {self.id}: deadband and on_delay must not be negative")

    def breached(self, value: float) -> bool:
        return _COMPARE[self.op](value, self.limit)

    def cleared(self, value: float) -> bool:
        """Back on the safe side of the limit by at least the deadband."""
        rising = self.op in (">", ">=")
        back = self.limit - self.deadband if rising else self.limit + self.deadband
        return value < back if rising else value > back
