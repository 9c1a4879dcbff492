"""Pumps and fans: domestic water boosters, the fire pump, sump (drainage) pumps, exhaust fans.

Each role has its duty cycle in automatic mode: a booster follows the water demand and cycles at
night, the fire pump only runs its weekly test (Monday 10:00, 10 minutes), a sump pump empties
its pit every couple of hours (more often in a rainstorm), a garage fan runs in the rush hours.
Running raises the motor current, vibration (ISO 10816 zones: healthy below 2.8 mm/s) and,
slowly, the bearing temperature. Wear (a scenario's `degrade`) raises all three and lowers the
flow until the motor trips on overload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from core.domain import Family, MetricValue
from simulators.models.base import CommandRejected, DeviceModel, Duration, NoParams, Params, Table
from simulators.models.curves import hour_of_day, is_workday, plateau, stable_seed
from simulators.models.meter import demand_shape

Role = Literal["supply", "fire", "sump", "fan"]
Mode = Literal["auto", "on", "off"]
BEARING_TAU_S = 1200.0
PLANT_ROOM_C = 24.0


@dataclass(frozen=True, slots=True)
class Rating:
    current_a: float
    flow_m3h: float
    pressure_kpa: float  # outlet pressure when running
    standby_kpa: float  # what the outlet holds when stopped


RATINGS: dict[str, Rating] = {
    "supply": Rating(32.0, 40.0, 480.0, 300.0),
    "fire": Rating(85.0, 144.0, 900.0, 350.0),  # 40 L/s; a jockey pump holds the standby pressure
    "sump": Rating(9.0, 25.0, 120.0, 0.0),
    "fan": Rating(22.0, 30000.0, 0.6, 0.0),
}


class DegradeParams(Params):
    over: Duration
    fail: bool = True


class ModeParams(Params):
    mode: Mode
    duration: Duration | None = Field(None, alias="for")


class DemandParams(Params):
    factor: float  # multiplies the automatic duty: 5 for a sump pump in a rainstorm
    duration: Duration | None = Field(None, alias="for")


class PumpModel(DeviceModel):
    family = Family.PUMP
    ACTIONS: ClassVar[Table] = {
        "degrade": DegradeParams, "trip": NoParams, "repair": NoParams, "mode": ModeParams, "demand": DemandParams,
    }
    COMMANDS: ClassVar[Table] = {"start": NoParams, "stop": NoParams, "auto": NoParams, "reset": NoParams,
                                 "start_fan": NoParams, "stop_fan": NoParams}

    def __init__(self, *args: Any, role: Role, duty_week: int | None = None, **kwargs: Any) -> None:
        """`duty_week` 0 or 1: one of a duty/standby pair, on duty in even or odd ISO weeks (主备轮换)."""
        super().__init__(*args, **kwargs)
        self.role, self.rating, self.duty_week = role, RATINGS[role], duty_week
        self.mode: Mode = "auto"
        self.running = False
        self.tripped = self.failed = False
        self.run_hours = self.rng.uniform(2_000, 30_000) if role != "fire" else self.rng.uniform(50, 400)
        self.bearing_c = PLANT_ROOM_C
        self._phase = stable_seed(self.device.device_id, "phase") % 7200
        self._degrade: tuple[datetime, timedelta, bool] | None = None
        self._wear = 0.0
        self._mode_until: datetime | None = None
        self._demand: tuple[float, datetime | None] = (1.0, None)
        self._last: datetime | None = None

    # --- duty ----------------------------------------------------------------------------------

    def wanted(self, ts: datetime) -> bool:
        """Whether the pump should run now (before trips and faults)."""
        if self._mode_until is not None and ts >= self._mode_until:
            self.mode, self._mode_until = "auto", None
        if self.mode != "auto":
            return self.mode == "on"
        return self._duty(ts.astimezone(self.tz), self._demand_factor(ts))

    def _duty(self, local: datetime, factor: float) -> bool:
        hour = hour_of_day(local)
        if self.role == "fire":
            return local.weekday() == 0 and 10.0 <= hour < 10 + 1 / 6
        if self.role == "fan":
            return is_workday(local) and (plateau(hour, 7, 9.5) > 0.5 or plateau(hour, 17, 20) > 0.5)
        seconds = (local.timestamp() + self._phase) % 7200
        if self.duty_week is not None and local.isocalendar().week % 2 != self.duty_week:
            return False  # the other pump of the pair is on duty this week
        if self.role == "sump":
            return seconds < min(7200.0, 300 * factor)  # 5 minutes every 2 hours, times the inflow
        if demand_shape("residential", local) * factor > 0.15:
            return True
        return seconds % 1800 < 360  # at night: 6 minutes in every 30 to hold the pressure

    def _demand_factor(self, ts: datetime) -> float:
        factor, until = self._demand
        if until is not None and ts >= until:
            self._demand = (1.0, None)
            return 1.0
        return factor

    def next_change(self) -> datetime | None:
        if self._degrade is None or not self._degrade[2] or self.failed:
            return None
        return self._degrade[0] + self._degrade[1]

    # --- sampling ------------------------------------------------------------------------------

    def _sample(self, ts: datetime) -> dict[str, MetricValue]:
        seconds = 0.0 if self._last is None else max(0.0, (ts - self._last).total_seconds())
        first = self._last is None
        self._last = ts
        if self.running:
            self.run_hours += seconds / 3600
        self._update_wear(ts)
        running = self.wanted(ts) and not self.tripped
        if running != self.running and not first:
            self.emit("start" if running else "stop")
        self.running = running
        self._heat_bearing(seconds)
        return self._values(ts)

    def _update_wear(self, ts: datetime) -> None:
        if self._degrade is None:
            return
        start, over, fail = self._degrade
        self._wear = min(1.0, max(0.0, (ts - start) / over))
        if self._wear >= 1.0 and fail and not self.failed:
            self.failed = self.tripped = True
            self.emit("overload")
            self.emit("trip")

    def _heat_bearing(self, seconds: float) -> None:
        target = PLANT_ROOM_C + ((18 + 40 * self._wear) if self.running else 0.0)
        self.bearing_c += (target - self.bearing_c) * (1 - math.exp(-seconds / BEARING_TAU_S))

    def _values(self, ts: datetime) -> dict[str, MetricValue]:
        r, wear = self.rating, self._wear
        load = 0.5 + 0.5 * demand_shape("residential", ts.astimezone(self.tz)) if self.role == "supply" else 1.0
        load = min(1.0, load)
        if self.running:
            current = r.current_a * (0.8 + 0.15 * load) * (1 + 0.2 * wear) * (1 + self.rng.gauss(0, 0.015))
            vibration = 1.6 + 9 * wear**2 + abs(self.rng.gauss(0, 0.12))
            pressure = r.pressure_kpa * (1.05 - 0.1 * load) * (1 - 0.1 * wear)
            pressure += self.rng.gauss(0, r.pressure_kpa * 0.01)
            flow = r.flow_m3h * load * (1 - 0.25 * wear) * (1 + self.rng.gauss(0, 0.02))
        else:
            current, vibration, flow = 0.0, abs(self.rng.gauss(0.05, 0.02)), 0.0
            pressure = r.standby_kpa + (self.rng.gauss(0, 3) if r.standby_kpa else 0.0)
        return {
            "running": self.running, "run_hours": round(self.run_hours, 3),
            "motor_current_a": round(max(0.0, current), 2), "vibration_mm_s": round(vibration, 2),
            "bearing_temp_c": round(self.bearing_c + self.rng.gauss(0, 0.2), 1),
            "pressure_kpa": round(max(0.0, pressure), 2), "flow_m3h": round(max(0.0, flow), 2),
        }

    # --- scenario actions ----------------------------------------------------------------------

    def act_degrade(self, params: DegradeParams, ts: datetime) -> None:
        self._degrade = (ts, params.over, params.fail)

    def act_trip(self, _params: NoParams, _ts: datetime) -> None:
        self.tripped = True
        self.emit("overload")
        self.emit("trip")

    def act_repair(self, _params: NoParams, _ts: datetime) -> None:
        self._degrade, self._wear = None, 0.0
        self.tripped = self.failed = False
        self.mode, self._mode_until = "auto", None

    def act_mode(self, params: ModeParams, ts: datetime) -> None:
        self.mode = params.mode
        self._mode_until = None if params.duration is None else ts + params.duration

    def act_demand(self, params: DemandParams, ts: datetime) -> None:
        self._demand = (params.factor, None if params.duration is None else ts + params.duration)

    # --- commands ------------------------------------------------------------------------------

    def cmd_start(self, _params: NoParams, _ts: datetime) -> None:
        if self.tripped:
            raise CommandRejected(f"{self.device.device_id} has tripped: reset it first"
                                  + (" (the motor has failed: repair needed)" if self.failed else ""))
        self.mode, self._mode_until = "on", None

    def cmd_stop(self, _params: NoParams, _ts: datetime) -> None:
        self.mode, self._mode_until = "off", None

    def cmd_auto(self, _params: NoParams, _ts: datetime) -> None:
        self.mode, self._mode_until = "auto", None

    def cmd_start_fan(self, params: NoParams, ts: datetime) -> None:
        self._need_fan()
        self.cmd_start(params, ts)

    def cmd_stop_fan(self, params: NoParams, ts: datetime) -> None:
        self._need_fan()
        self.cmd_stop(params, ts)

    def _need_fan(self) -> None:
        if self.role != "fan":
            raise CommandRejected(f"{self.device.device_id} is a {self.role} pump, not a fan: use start/stop")

    def cmd_reset(self, _params: NoParams, _ts: datetime) -> None:
        if self.failed:
            raise CommandRejected(f"{self.device.device_id}: the motor has failed (bearing worn out); "
                                  "repair it before a reset")
        self.tripped = False
