"""The device schema: metrics, events and fault codes of every family, with units and ranges.

One source for the ingest validator, the simulators and the published contract. Ranges are
physical plausibility bounds (a reading outside them is a device or gateway error), not
alarm limits; alarm limits belong to rules.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from core.domain import Family, MetricValue

MetricType = Literal["number", "integer", "boolean", "enum"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric of a family: type, unit, bounds or allowed values, and a description."""

    name: str
    type: MetricType
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    description: str = ""

    def check(self, value: object) -> MetricValue:
        """Return the value if it fits this spec, else raise ValueError saying why."""
        if self.type == "boolean":
            if isinstance(value, bool):
                return value
            raise ValueError(f"{self.name} must be true or false, got {value!r}")
        if self.type == "enum":
            if isinstance(value, str) and value in self.choices:
                return value
            raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
        return self._check_number(value)

    def _check_number(self, value: object) -> MetricValue:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{self.name} must be a number, got {value!r}")
        if self.type == "integer" and not (isinstance(value, int) or float(value).is_integer()):
            raise ValueError(f"{self.name} must be an integer, got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{self.name} must be finite, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{self.name}={value} is below its valid minimum {self.minimum} {self.unit}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{self.name}={value} is above its valid maximum {self.maximum} {self.unit}")
        return int(value) if self.type == "integer" else float(value)


def _num(name: str, unit: str, lo: float, hi: float, desc: str = "") -> MetricSpec:
    return MetricSpec(name, "number", unit, lo, hi, description=desc)


def _int(name: str, lo: float, hi: float, desc: str = "") -> MetricSpec:
    return MetricSpec(name, "integer", "", lo, hi, description=desc)


def _bool(name: str, desc: str = "") -> MetricSpec:
    return MetricSpec(name, "boolean", description=desc)


def _enum(name: str, choices: tuple[str, ...], desc: str = "") -> MetricSpec:
    return MetricSpec(name, "enum", choices=choices, description=desc)


_VALVE = ("open", "closed", "abnormal")

FAMILY_METRICS: dict[Family, tuple[MetricSpec, ...]] = {
    Family.METER: (
        _num("energy_kwh", "kWh", 0, 1e10, "cumulative active energy (DL/T 645)"),
        _num("power_kw", "kW", -1e5, 1e5, "active power"),
        _num("voltage_v", "V", 0, 1000),
        _num("current_a", "A", 0, 1e4),
        _num("power_factor", "", -1, 1),
        _num("volume_m3", "m³", 0, 1e10, "cumulative volume (CJ/T 188)"),
        _num("flow_m3h", "m³/h", -1e4, 1e4),
        _num("heat_kwh", "kWh", 0, 1e10, "cumulative heat"),
        _num("supply_temp_c", "°C", -20, 150, "heat meter supply temperature"),
        _num("return_temp_c", "°C", -20, 150, "heat meter return temperature"),
        _enum("valve", _VALVE),
        _bool("battery_low"),
    ),
    Family.ELEVATOR: (
        _enum("service_mode", ("normal", "inspection", "fire", "out_of_service", "parking", "emergency_power")),
        _bool("running"),
        _enum("direction", ("up", "down", "stopped")),
        _int("floor", -10, 200),
        _enum("door", ("open", "closed", "opening", "closing")),
        _bool("door_zone", "car is inside the door (levelling) zone"),
        _bool("passenger", "passenger detected in the car"),
        _num("speed_ms", "m/s", -20, 20),
        _int("run_count", 0, 1e12),
        _int("door_cycles", 0, 1e12),
        _num("motor_current_a", "A", 0, 2000),
        _num("vibration_mg", "mg", 0, 10000),
        _num("levelling_mm", "mm", -1000, 1000),
        _int("fault_code", 0, 99, "GB/T 24476 fault code, 0 = none, 11 = entrapment"),
        _bool("power_ok", "main power present"),
        _bool("alarm_button"),
    ),
    Family.FIRE_PANEL: tuple(
        _bool(bit, f"GB/T 26875.3 panel status bit: {bit}")
        for bit in (
            "fire", "fault", "disabled", "supervisory", "start", "feedback",
            "mains_fault", "battery_fault", "bus_fault", "auto",
        )
    ),
    Family.GAS: (
        _num("lel_pct", "%LEL", 0, 100),
        _num("co_ppm", "ppm", 0, 10000),
        _bool("fault"),
        _enum("valve", _VALVE),
        _bool("fan", "exhaust fan running"),
    ),
    Family.ENV: (
        _num("temp_c", "°C", -50, 80),
        _num("rh_pct", "%", 0, 100),
        _num("co2_ppm", "ppm", 0, 50000),
        _num("pm25_ugm3", "µg/m³", 0, 5000),
        _num("pm10_ugm3", "µg/m³", 0, 5000),
        _num("tvoc_mgm3", "mg/m³", 0, 100),
        _num("hcho_mgm3", "mg/m³", 0, 10),
        _num("noise_dba", "dB(A)", 0, 160),
    ),
    Family.PUMP: (
        _bool("running"),
        _num("run_hours", "h", 0, 1e7),
        _num("motor_current_a", "A", 0, 5000),
        _num("vibration_mm_s", "mm/s", 0, 200),
        _num("bearing_temp_c", "°C", -40, 250),
        _num("pressure_kpa", "kPa", -100, 10000),
        _num("flow_m3h", "m³/h", 0, 1e5),
    ),
}

class MeterKind(StrEnum):
    """What a `meter` measures (DL/T 645 electricity; CJ/T 188 water, gas, heat)."""

    ELECTRIC = "electric"
    WATER = "water"
    GAS = "gas"
    HEAT = "heat"


METER_KIND_METRICS: dict[MeterKind, tuple[str, ...]] = {
    MeterKind.ELECTRIC: ("energy_kwh", "power_kw", "voltage_v", "current_a", "power_factor"),
    MeterKind.WATER: ("volume_m3", "flow_m3h", "valve", "battery_low"),
    MeterKind.GAS: ("volume_m3", "flow_m3h", "valve", "battery_low"),
    MeterKind.HEAT: ("heat_kwh", "volume_m3", "flow_m3h", "supply_temp_c", "return_temp_c", "valve", "battery_low"),
}


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An event (or fault) code a family may report, with its zh-CN and English names."""

    code: str
    zh: str
    en: str


def _events(*items: tuple[str, str, str]) -> tuple[EventSpec, ...]:
    return tuple(EventSpec(*item) for item in items)


# Elevator fault codes (GB/T 24476 as encoded by public implementations; reference.md §2.3).
ELEVATOR_FAULT_CODES: dict[int, tuple[str, str]] = {
    1: ("安全回路断路", "safety circuit open while running"),
    2: ("关门故障", "door-close fault"),
    3: ("开门故障", "door-open fault"),
    4: ("门区外停梯", "stopped outside the door zone"),
    5: ("轿厢意外移动", "unintended car movement (UCM)"),
    6: ("电动机运转时间限制器动作", "motor run-time limiter tripped"),
    7: ("楼层位置丢失", "floor position lost"),
    8: ("防止电梯再运行故障", "restart-prevention fault"),
    9: ("冲顶", "overshoot at the top"),
    10: ("蹲底", "bottom strike"),
    11: ("困人", "passenger entrapment"),
}

FAMILY_EVENTS: dict[Family, tuple[EventSpec, ...]] = {
    Family.METER: _events(
        ("cover_open", "开表盖", "meter cover opened"),
        ("terminal_cover_open", "开端钮盒", "terminal cover opened"),
        ("power_down", "掉电", "power down"),
        ("reverse_flow", "反向计量", "reverse flow / reverse energy"),
        ("magnetic_tamper", "磁干扰", "magnetic-field tamper"),
        ("meter_clear", "电表清零", "meter cleared"),
        ("programming", "编程", "meter programmed"),
        ("time_set", "校时", "clock set"),
        ("phase_voltage_loss", "失压", "phase voltage loss"),
    ),
    Family.ELEVATOR: _events(
        ("back_to_auto", "恢复自动运行", "back to automatic"),
        ("main_power_lost", "主电源断电", "main power lost"),
        ("out_of_service", "停止服务", "out of service"),
        ("inspection", "检修", "inspection mode"),
        ("fire_recall", "消防返回", "fire recall"),
        ("firefighter_operation", "消防员运行", "firefighter operation"),
        ("emergency_power", "应急电源", "on emergency power"),
        ("earthquake", "地震", "seismic operation"),
        ("door_reopen", "重开门", "door reopened"),
        ("overspeed", "超速", "overspeed"),
    ),
    Family.FIRE_PANEL: _events(
        ("point_fire", "火警", "fire alarm at a point"),
        ("point_fault", "故障", "fault at a point"),
        ("point_disabled", "屏蔽", "point disabled"),
        ("point_supervisory", "监管", "supervisory signal at a point"),
        ("point_start", "启动", "linkage output started"),
        ("point_feedback", "反馈", "linkage feedback received"),
        ("point_power_fault", "电源故障", "point power fault"),
        ("point_clear", "恢复", "point back to normal"),
        ("reset", "复位", "panel reset"),
        ("silence", "消音", "sounders silenced"),
        ("manual_alarm", "手动报警", "manual alarm"),
        ("self_test", "自检", "self-test"),
    ),
    Family.GAS: _events(
        ("power_fault", "电源故障", "detector power fault"),
        ("sensor_expired", "传感器失效", "sensor end of life"),
    ),
    Family.ENV: _events(("sensor_fault", "传感器故障", "sensor fault"),),
    Family.PUMP: _events(
        ("start", "启动", "started"),
        ("stop", "停止", "stopped"),
        ("trip", "跳闸", "tripped"),
        ("overload", "过载", "motor overload"),
    ),
}

# GB/T 26875.3 component types a fire panel point event may carry (reference.md §3.1).
FIRE_COMPONENT_TYPES: dict[int, tuple[str, str]] = {
    10: ("可燃气体探测器", "combustible gas detector"),
    23: ("手动报警按钮", "manual call point"),
    30: ("感温探测器", "heat detector"),
    40: ("感烟探测器", "smoke detector"),
    85: ("输入模块", "input module"),
    86: ("输出模块", "output module"),
    91: ("消防泵", "fire pump"),
    96: ("水流指示器", "water-flow indicator"),
    111: ("排烟风机", "smoke exhaust fan"),
    117: ("卷帘控制器", "shutter controller"),
}

@dataclass(frozen=True, slots=True)
class AttrSpec:
    """An event attribute with a fixed meaning (e.g. the loop of a fire-panel point event)."""

    name: str
    type: Literal["integer", "text"]
    maximum: int  # largest value, or longest text
    description: str = ""
    minimum: int = 0  # integers only

    def check(self, value: object) -> MetricValue:
        """Return the value if it fits, else raise ValueError saying why."""
        if self.type == "text":
            if isinstance(value, str) and len(value) <= self.maximum:
                return value
            raise ValueError(f"event attribute {self.name} must be text of at most {self.maximum} characters")
        if isinstance(value, int) and not isinstance(value, bool) and self.minimum <= value <= self.maximum:
            return value
        raise ValueError(f"event attribute {self.name} must be an integer {self.minimum} to {self.maximum}, "
                         f"got {value!r}"[:300])


# Attributes of the events every family may carry. Other attributes are allowed (a gateway may
# pass on what its device says) when their names are identifiers and their values scalars.
EVENT_ATTR_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_EVENT_ATTRS = 16
MAX_EVENTS = 1000  # per reading (the store spreads a reading's events over the ns of its ms)
MAX_ATTR_TEXT = 200
# Names the telemetry store uses itself next to an event's attributes (tags, time, bookkeeping).
RESERVED_EVENT_ATTRS = frozenset({"code", "site", "family", "device", "time", "seq", "historical", "index"})
_FIRE_POINT = (
    AttrSpec("loop", "integer", 255, "bus loop (回路) of the point"),
    AttrSpec("address", "integer", 2**32 - 1, "address (地址) of the point on its loop"),
    AttrSpec("zone", "text", 64, "fire compartment / zone (防火分区) of the point"),
    AttrSpec("component_type", "integer", 255, "GB/T 26875.3 component type, e.g. 40 smoke detector"),
    AttrSpec("description", "text", 64, "the panel's description of the point (GB/T 26875.3: 31 bytes)"),
)
EVENT_ATTRS: dict[Family, tuple[AttrSpec, ...]] = {
    Family.METER: (),
    Family.ELEVATOR: (AttrSpec("floor", "integer", 200, "floor the event happened at", -10),),
    Family.FIRE_PANEL: _FIRE_POINT,
    Family.GAS: (),
    Family.ENV: (),
    Family.PUMP: (),
}
_ATTR_INDEX: dict[Family, dict[str, AttrSpec]] = {
    family: {spec.name: spec for spec in specs} for family, specs in EVENT_ATTRS.items()
}


def event_attr_spec(family: Family, name: str) -> AttrSpec | None:
    """The spec of a typed event attribute of `family`, or None for a free attribute."""
    return _ATTR_INDEX[family].get(name)


def check_event_attr(family: Family, name: str, value: object) -> MetricValue:
    """The value of one event attribute if valid for `family`, else raise ValueError saying why."""
    if not isinstance(name, str) or EVENT_ATTR_NAME.fullmatch(name) is None or name in RESERVED_EVENT_ATTRS:
        raise ValueError(f"event attribute name {name!r} must match [a-z][a-z0-9_]{{0,63}} and not be one of "
                         f"{', '.join(sorted(RESERVED_EVENT_ATTRS))}")
    spec = event_attr_spec(family, name)
    if spec is not None:
        return spec.check(value)
    if isinstance(value, str) and len(value) <= MAX_ATTR_TEXT:
        return value
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise ValueError(f"event attribute {name} must be a finite number, true/false or text "
                     f"of at most {MAX_ATTR_TEXT} characters, got {value!r}"[:300])


# How often a device of each family reports when healthy; silence past a multiple of this
# marks the device offline and its values stale.
DEFAULT_REPORT_INTERVAL_S: dict[Family, float] = {
    Family.METER: 900.0,
    Family.ELEVATOR: 30.0,
    Family.FIRE_PANEL: 300.0,
    Family.GAS: 60.0,
    Family.ENV: 300.0,
    Family.PUMP: 60.0,
}

_INDEX: dict[Family, dict[str, MetricSpec]] = {
    family: {spec.name: spec for spec in specs} for family, specs in FAMILY_METRICS.items()
}
_EVENT_INDEX: dict[Family, frozenset[str]] = {
    family: frozenset(e.code for e in events) for family, events in FAMILY_EVENTS.items()
}


def metric_spec(family: Family, name: str) -> MetricSpec | None:
    """The spec of `name` in `family`, or None if the family has no such metric."""
    return _INDEX[family].get(name)


def is_known_event(family: Family, code: str) -> bool:
    return code in _EVENT_INDEX[family]
