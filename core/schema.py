"""The device schema: metrics of every family with type, unit and valid range.

One source for the ingest validator, the simulators and the published contract. Ranges are
physical plausibility bounds (a reading outside them is a device or gateway error), not
alarm limits; alarm limits belong to rules.
"""

from __future__ import annotations

from dataclasses import dataclass
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

_INDEX: dict[Family, dict[str, MetricSpec]] = {
    family: {spec.name: spec for spec in specs} for family, specs in FAMILY_METRICS.items()
}


def metric_spec(family: Family, name: str) -> MetricSpec | None:
    """The spec of `name` in `family`, or None if the family has no such metric."""
    return _INDEX[family].get(name)
