"""Utility meters: electricity (DL/T 645) and water, gas and heat (CJ/T 188).

Consumption follows daily and weekly shapes in site-local time (an office building busy on
workdays, a residential building with morning and evening peaks, a canteen at meal times,
district heating in season); cumulative registers integrate the rate between readings, so they
only ever grow. A meter reports only the metrics of its kind (`core.schema.METER_KIND_METRICS`).

Faults a scenario can apply: power outage (electricity), loss of supply (water, gas, heat),
leaks and bursts downstream of the meter, tampering (cover, terminal cover, a magnet that makes
the meter under-register) and reverse flow. Commands: the CJ/T 188 valve (close/open) and the
DL/T 645 relay (trip/reclose).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from core.domain import Family, MetricValue
from core.schema import METER_KIND_METRICS, MeterKind
from simulators.models.base import (
    ActionError,
    CommandRejected,
    DeviceModel,
    Duration,
    NoParams,
    Params,
    Table,
)
from simulators.models.curves import Peak, ValueNoise, hour_of_day, is_workday, peaks, plateau, stable_seed

Profile = Literal["office", "residential", "canteen", "district_heating"]
KWH_PER_M3_K = 1.163  # heat carried by 1 m³ of water per kelvin

_RESIDENTIAL_WORKDAY = (Peak(7.3, 0.8, 0.9), Peak(12.2, 1.0, 0.3), Peak(20.3, 1.6, 0.85))
_RESIDENTIAL_WEEKEND = (Peak(9.0, 1.3, 0.8), Peak(12.5, 1.2, 0.5), Peak(20.0, 1.8, 0.85))
_CANTEEN = (Peak(11.6, 0.7, 1.0), Peak(17.9, 0.8, 0.8), Peak(6.8, 0.5, 0.3))


def demand_shape(profile: Profile, local_ts: datetime) -> float:
    """Relative demand 0..~1 of a building type at a local time."""
    hour = hour_of_day(local_ts)
    if profile == "office":
        if is_workday(local_ts):
            return 0.12 + 0.85 * plateau(hour, 8.0, 18.5) + 0.1 * plateau(hour, 11.5, 13.0)
        return 0.08 + 0.07 * plateau(hour, 9, 17)
    if profile == "residential":
        shape = _RESIDENTIAL_WORKDAY if is_workday(local_ts) else _RESIDENTIAL_WEEKEND
        return peaks(hour, shape, 0.02)
    if profile == "canteen":
        return peaks(hour, _CANTEEN, 0.0) if is_workday(local_ts) else 0.3 * peaks(hour, _CANTEEN, 0.0)
    return 1.0


class LeakParams(Params):
    flow_m3h: float = 0.2  # extra flow through the meter: ~0.1-0.5 a dripping pipe, 10+ a burst


class SupplyParams(Params):
    available: bool  # false: the supply upstream of the meter has stopped (no water, no gas)


class TamperParams(Params):
    method: Literal["cover", "terminal_cover", "magnet"]
    under_register: float = 0.3  # share of the true flow a magnet lets the meter count
    duration: Duration | None = Field(None, alias="for")


class ReverseParams(Params):
    flow_m3h: float = 0.5
    duration: Duration | None = Field(None, alias="for")


class MeterModel(DeviceModel):
    """One meter of one kind; `rated` is peak kW (electric), or peak m³/h (water, gas, heat)."""

    family = Family.METER
    ACTIONS: ClassVar[Table] = {
        "outage": NoParams, "restore": NoParams, "supply": SupplyParams, "leak": LeakParams, "stop_leak": NoParams,
        "tamper": TamperParams, "reverse": ReverseParams,
    }
    COMMANDS: ClassVar[Table] = {"close_valve": NoParams, "open_valve": NoParams, "trip": NoParams, "reclose": NoParams}
    _PIPED = frozenset({MeterKind.WATER, MeterKind.GAS, MeterKind.HEAT})
    _KIND_ACTIONS: ClassVar[dict[str, frozenset[MeterKind]]] = {
        "outage": frozenset({MeterKind.ELECTRIC}), "restore": frozenset({MeterKind.ELECTRIC}),
        "supply": _PIPED, "leak": _PIPED, "stop_leak": _PIPED, "reverse": frozenset({MeterKind.WATER, MeterKind.HEAT}),
    }

    def __init__(self, *args: Any, kind: MeterKind, profile: Profile, rated: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind, self.profile, self.rated = kind, profile, rated
        self.register = self.rng.uniform(1e3, 5e4)  # kWh or m³ already counted
        self.heat_kwh = self.rng.uniform(1e4, 1e5)
        self.valve_open, self.relay_closed, self.powered, self.supplied = True, True, True, True
        self.leak_m3h = 0.0
        self._tamper: tuple[float, datetime | None] | None = None
        self._reverse: tuple[float, datetime | None] | None = None
        self._last: datetime | None = None
        self._last_rate = 0.0
        self._noise = ValueNoise(stable_seed(self.device.device_id, "v"), 1800)

    def metric_names(self) -> tuple[str, ...]:
        return METER_KIND_METRICS[self.kind]

    def _kind_label(self) -> str:
        return f"{self.kind.value} meter"

    # --- sampling ------------------------------------------------------------------------------

    def _sample(self, ts: datetime) -> dict[str, MetricValue]:
        hours = 0.0 if self._last is None else max(0.0, (ts - self._last).total_seconds() / 3600)
        self._last = ts
        if self.kind is MeterKind.ELECTRIC:
            return self._electric(ts, hours)
        if self.kind is MeterKind.HEAT:
            return self._heat(ts, hours)
        return self._volume(ts, hours)

    def _electric(self, ts: datetime, hours: float) -> dict[str, MetricValue]:
        shape = demand_shape(self.profile, ts.astimezone(self.tz))
        hvac = 1 + 0.3 * min(1.0, abs(self.weather.temp_c(ts) - 18) / 15)  # cooling and heating load
        on = self.powered and self.relay_closed
        power = self.rated * shape * hvac * (1 + self.rng.gauss(0, 0.03)) if on else 0.0
        self.register += hours * (power + self._last_rate) / 2
        self._last_rate = power
        voltage = 220 * (1 + 0.015 * self._noise(ts)) - 4 * shape + self.rng.gauss(0, 0.4) if self.powered else 0.0
        pf = min(0.99, 0.86 + 0.08 * shape + self.rng.gauss(0, 0.005))
        current = power * 1000 / (3 * voltage * pf) if voltage > 0 else 0.0
        return {"energy_kwh": round(self.register, 2), "power_kw": round(power, 2), "voltage_v": round(voltage, 1),
                "current_a": round(current, 2), "power_factor": round(pf, 3)}

    def _flow(self, ts: datetime) -> float:
        """The true flow through the pipe (what a correct meter would count)."""
        if not (self.valve_open and self.supplied):
            return 0.0
        shape = demand_shape(self.profile, ts.astimezone(self.tz))
        use = self.rated * shape * max(0.0, 1 + self.rng.gauss(0, 0.12))
        if shape < 0.08 and self.rng.random() < 0.6:
            use = 0.0  # at night most intervals see no draw at all; a leak shows as flow in every one
        return use + self.leak_m3h

    def _volume(self, ts: datetime, hours: float) -> dict[str, MetricValue]:
        flow = self._measured(ts, self._flow(ts))
        self.register = max(0.0, self.register + hours * (flow + self._last_rate) / 2)
        self._last_rate = flow
        return {"volume_m3": round(self.register, 3), "flow_m3h": round(flow, 3),
                "valve": "open" if self.valve_open else "closed", "battery_low": False}

    def _measured(self, ts: datetime, flow: float) -> float:
        """What the meter counts: a magnet makes it under-register, a reversed pipe runs it backwards."""
        if self._tamper is not None:
            share, until = self._tamper
            if until is None or ts < until:
                flow *= share
            else:
                self._tamper = None
        if self._reverse is not None:
            reverse, until = self._reverse
            if until is None or ts < until:
                return -reverse
            self._reverse = None
        return flow

    def _heat(self, ts: datetime, hours: float) -> dict[str, MetricValue]:
        outdoor = self.weather.temp_c(ts)
        if self.weather.heating_season(ts) and self.valve_open and self.supplied:
            flow = self.rated * (1 + self.rng.gauss(0, 0.02)) + self.leak_m3h
            supply = min(70.0, max(40.0, 40 + 1.1 * (15 - outdoor))) + self.rng.gauss(0, 0.3)
            returned = supply - (6 + 0.25 * max(0.0, 15 - outdoor)) + self.rng.gauss(0, 0.2)
        else:
            flow = self.leak_m3h if self.valve_open and self.supplied else 0.0
            supply = returned = 22 + 0.2 * (outdoor - 20) + self.rng.gauss(0, 0.2)
        flow = self._measured(ts, flow)
        power = KWH_PER_M3_K * max(0.0, flow) * max(0.0, supply - returned)
        self.heat_kwh += hours * (power + self._last_rate) / 2
        self._last_rate = power
        self.register = max(0.0, self.register + hours * flow)
        return {"heat_kwh": round(self.heat_kwh, 2), "volume_m3": round(self.register, 3), "flow_m3h": round(flow, 3),
                "supply_temp_c": round(supply, 2), "return_temp_c": round(returned, 2),
                "valve": "open" if self.valve_open else "closed", "battery_low": False}

    # --- scenario actions ----------------------------------------------------------------------

    def actions(self) -> dict[str, type[Params]]:
        return {name: params for name, params in super().actions().items()
                if self.kind in self._KIND_ACTIONS.get(name, (self.kind,))}

    def parse_action(self, name: str, raw: Any) -> Params:
        kinds = self._KIND_ACTIONS.get(name)
        if kinds is not None and self.kind not in kinds:
            allowed = ", ".join(sorted(k.value for k in kinds))
            raise ActionError("do", f"{self.device.device_id} is a {self.kind.value} meter; "
                                    f"{name!r} applies to {allowed} meters")
        if name == "tamper" and raw.get("method") == "magnet" and self.kind is MeterKind.ELECTRIC:
            raise ActionError("method", "a magnet tamper applies to CJ/T 188 (water, gas, heat) meters")
        return super().parse_action(name, raw)

    def act_outage(self, _params: NoParams, _ts: datetime) -> None:
        self.powered = False
        self.emit("power_down")

    def act_restore(self, _params: NoParams, _ts: datetime) -> None:
        self.powered = True

    def act_leak(self, params: LeakParams, _ts: datetime) -> None:
        self.leak_m3h = params.flow_m3h

    def act_stop_leak(self, _params: NoParams, _ts: datetime) -> None:
        self.leak_m3h = 0.0

    def act_supply(self, params: SupplyParams, _ts: datetime) -> None:
        self.supplied = params.available

    def act_tamper(self, params: TamperParams, ts: datetime) -> None:
        until = None if params.duration is None else ts + params.duration
        if params.method == "magnet":
            self._tamper = (params.under_register, until)
            self.emit("magnetic_tamper")
        else:
            self.emit("cover_open" if params.method == "cover" else "terminal_cover_open")

    def act_reverse(self, params: ReverseParams, ts: datetime) -> None:
        self._reverse = (params.flow_m3h, None if params.duration is None else ts + params.duration)
        self.emit("reverse_flow")

    # --- commands ------------------------------------------------------------------------------

    def cmd_close_valve(self, _params: NoParams, _ts: datetime) -> None:
        self._need_valve()
        self.valve_open = False

    def cmd_open_valve(self, _params: NoParams, _ts: datetime) -> None:
        self._need_valve()
        self.valve_open = True

    def cmd_trip(self, _params: NoParams, _ts: datetime) -> None:
        self._need_relay()
        self.relay_closed = False

    def cmd_reclose(self, _params: NoParams, _ts: datetime) -> None:
        self._need_relay()
        self.relay_closed = True

    def _need_valve(self) -> None:
        if self.kind is MeterKind.ELECTRIC:
            raise CommandRejected(f"{self.device.device_id} is an electricity meter: it has a relay, not a valve")

    def _need_relay(self) -> None:
        if self.kind is not MeterKind.ELECTRIC:
            raise CommandRejected(f"{self.device.device_id} is a {self.kind.value} meter: it has a valve, not a relay")
