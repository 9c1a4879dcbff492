"""Domain values shared by every layer: device families, readings, grades and alarm states.

Values are frozen and validated at construction, so a `Reading` that exists is a valid one.
Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from functools import lru_cache
from types import MappingProxyType

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")

MetricValue = float | int | bool | str


def validate_id(value: str, what: str) -> str:
    """Return `value` if it is a valid v1 id (`[A-Za-z0-9_-]{1,64}`), else raise ValueError."""
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise ValueError(f"invalid {what} {value!r}: ids are 1-64 characters of A-Z a-z 0-9 _ -")
    return value


class Family(StrEnum):
    """Device families of the v1 contract (DESIGN.md §3)."""

    METER = "meter"
    ELEVATOR = "elevator"
    FIRE_PANEL = "fire_panel"
    GAS = "gas"
    ENV = "env"
    PUMP = "pump"


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """Identifies a device: site (one property project), family and device id."""

    site: str
    family: Family
    device_id: str

    def __post_init__(self) -> None:
        validate_id(self.site, "site id")
        validate_id(self.device_id, "device id")
        # Callers may pass the family's text value; store the enum member.
        object.__setattr__(self, "family", Family(self.family))

    @property
    def key(self) -> str:
        """A stable text key, `site/family/device_id`, used as an alarm source."""
        return f"{self.site}/{self.family.value}/{self.device_id}"

    @classmethod
    def from_key(cls, key: str) -> DeviceRef:
        site, family, device_id = key.split("/")
        return cls(site, Family(family), device_id)


@lru_cache(maxsize=200_000)
def device_ref(site: str, family: str, device_id: str) -> DeviceRef:
    """A validated `DeviceRef`, cached: the hot path sees the same devices again and again."""
    return DeviceRef(site, Family(family), device_id)


@dataclass(frozen=True, slots=True)
class Event:
    """A discrete event reported with a reading, e.g. ``cover_open``."""

    code: str
    attrs: Mapping[str, MetricValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reading:
    """One normalized reading of one device at one time."""

    device: DeviceRef
    ts: datetime
    metrics: Mapping[str, MetricValue]
    seq: int | None = None
    events: tuple[Event, ...] = ()
    historical: bool = False

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None or self.ts.utcoffset() != timedelta(0):
            raise ValueError(f"reading of {self.device.key}: ts must be timezone-aware UTC")
        for name, value in self.metrics.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"reading of {self.device.key}: metric {name} is not finite")
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))


class Grade(IntEnum):
    """Emergency response grade (应急响应等级); 1 is the most severe."""

    GRADE_1 = 1
    GRADE_2 = 2
    GRADE_3 = 3
    GRADE_4 = 4

    @property
    def label_zh(self) -> str:
        return _GRADE_LABELS[self][0]

    @property
    def label_en(self) -> str:
        return _GRADE_LABELS[self][1]

    @property
    def colour(self) -> str:
        return _GRADE_LABELS[self][2]

    @property
    def is_emergency(self) -> bool:
        """Grades 1-2 are emergencies (紧急); 3-4 are general (一般)."""
        return self <= Grade.GRADE_2

    @property
    def default_response(self) -> timedelta:
        """Default time to respond (acknowledge) before escalation (DESIGN.md §4)."""
        return timedelta(minutes=5 if self.is_emergency else 15)

    @property
    def default_handling(self) -> timedelta:
        """Default time to handle the alarm (DESIGN.md §4)."""
        return timedelta(minutes=30) if self.is_emergency else timedelta(hours=4)


_GRADE_LABELS: dict[Grade, tuple[str, str, str]] = {
    Grade.GRADE_1: ("一级 特别重大", "Grade 1 (critical)", "red"),
    Grade.GRADE_2: ("二级 重大", "Grade 2 (major)", "orange"),
    Grade.GRADE_3: ("三级 较大", "Grade 3 (significant)", "yellow"),
    Grade.GRADE_4: ("四级 一般", "Grade 4 (general)", "blue"),
}


class AlarmState(StrEnum):
    """ISA-18.2 alarm states."""

    NORMAL = "normal"
    UNACK = "unack"
    ACKED = "acked"
    RTN_UNACK = "rtn_unack"

    @property
    def is_active(self) -> bool:
        """The condition is present (unack or acked)."""
        return self in (AlarmState.UNACK, AlarmState.ACKED)

    @property
    def is_open(self) -> bool:
        """Still needs attention: anything but normal."""
        return self is not AlarmState.NORMAL


class Role(StrEnum):
    """User roles, each including the rights of the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ENGINEER = "engineer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank
