"""Combustible and toxic gas detectors (GB/T 50493 two-level alarms, GB 15322) with their
interlocked emergency shut-off valve and exhaust fan (GB 50028 §10.8).

Clean air reads near 0 %LEL with noise, plus a slow zero drift (a catalytic sensor ages). A
kitchen detector sees a little CO while cooking; a garage detector sees CO with the traffic.

A leak (`leak` action) rises linearly to its plateau, so a scenario can state when it crosses
25 %LEL (level 1) and 50 %LEL (level 2). Closing the valve stops the source and the gas clears
with a time constant of 5 minutes, 2 with the fan running; the fan alone dilutes the gas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from core.domain import Family, MetricValue
from simulators.models.base import CommandRejected, DeviceModel, Duration, NoParams, Params, Table
from simulators.models.curves import Peak, hour_of_day, is_workday, peaks

Location = Literal["kitchen", "garage"]
CLEAR_TAU_S, CLEAR_TAU_FAN_S = 300.0, 120.0
FAN_DILUTION = 0.6  # share of the leak's concentration left with the exhaust fan running
REOPEN_BELOW_LEL = 10.0  # do not reopen the supply until a re-test reads below this
_GARAGE_TRAFFIC = (Peak(8.0, 0.8, 1.0), Peak(18.3, 1.0, 0.9))


@dataclass
class _Leak:
    start: datetime
    rate_per_s: float  # %LEL per second while the source flows
    plateau: float
    stopped_at: datetime | None = None
    level_at_stop: float = 0.0

    def level(self, ts: datetime, fan: bool) -> float:
        if self.stopped_at is not None:
            tau = CLEAR_TAU_FAN_S if fan else CLEAR_TAU_S
            return self.level_at_stop * math.exp(-max(0.0, (ts - self.stopped_at).total_seconds()) / tau)
        rising = min(self.plateau, self.rate_per_s * max(0.0, (ts - self.start).total_seconds()))
        return rising * (FAN_DILUTION if fan else 1.0)


class LeakParams(Params):
    to: float = 60.0  # the plateau in %LEL
    over: Duration  # time to reach the plateau


class FaultParams(Params):
    active: bool = True
    power: bool = False  # a power fault (GB/T 26875.3 电源故障) rather than a sensor fault


class GasDetectorModel(DeviceModel):
    family = Family.GAS
    ACTIONS: ClassVar[Table] = {"leak": LeakParams, "stop_leak": NoParams, "fault": FaultParams, "expire": NoParams}
    COMMANDS: ClassVar[Table] = {"close_valve": NoParams, "open_valve": NoParams,
                                 "start_fan": NoParams, "stop_fan": NoParams}

    def __init__(self, *args: Any, location: Location = "kitchen", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.location = location
        self.zero = self.rng.uniform(0.0, 0.6)
        self.valve_open, self.fan, self.fault = True, False, False
        self._leak: _Leak | None = None
        self._last: datetime | None = None
        self._level = 0.0

    def _sample(self, ts: datetime) -> dict[str, MetricValue]:
        self._drift(ts)
        leak = 0.0 if self._leak is None else self._leak.level(ts, self.fan)
        if self._leak is not None and self._leak.stopped_at is not None and leak < 0.05:
            self._leak = None
        self._level = leak
        lel = max(0.0, self.zero + leak + self.rng.gauss(0, 0.15))
        return {"lel_pct": round(lel, 2), "co_ppm": round(self._co(ts), 1), "fault": self.fault,
                "valve": "open" if self.valve_open else "closed", "fan": self.fan}

    def _drift(self, ts: datetime) -> None:
        """Zero drift: a slow random walk with a small upward bias, kept within 0-3 %LEL."""
        hours = 0.0 if self._last is None else max(0.0, (ts - self._last).total_seconds() / 3600)
        self._last = ts
        self.zero = min(3.0, max(0.0, self.zero + 0.0004 * hours + self.rng.gauss(0, 0.02 * math.sqrt(hours))))

    def _co(self, ts: datetime) -> float:
        local = ts.astimezone(self.tz)
        if self.location == "garage":
            traffic = peaks(hour_of_day(local), _GARAGE_TRAFFIC, 0.05) * (1.0 if is_workday(local) else 0.5)
            return max(0.0, 2 + 22 * traffic + self.rng.gauss(0, 1.5))
        cooking = 1.0 if 10.5 <= hour_of_day(local) <= 13 or 16.5 <= hour_of_day(local) <= 19.5 else 0.0
        return max(0.0, 0.5 + 4 * cooking + self.rng.gauss(0, 0.6))

    # --- scenario actions ----------------------------------------------------------------------

    def act_leak(self, params: LeakParams, ts: datetime) -> None:
        rate = params.to / max(params.over.total_seconds(), 1.0)
        self._leak = _Leak(ts, rate, params.to)

    def act_stop_leak(self, _params: NoParams, ts: datetime) -> None:
        self._stop_source(ts)

    def act_fault(self, params: FaultParams, _ts: datetime) -> None:
        self.fault = params.active
        if params.active and params.power:
            self.emit("power_fault")

    def act_expire(self, _params: NoParams, _ts: datetime) -> None:
        self.fault = True
        self.emit("sensor_expired")

    def _stop_source(self, ts: datetime) -> None:
        if self._leak is not None and self._leak.stopped_at is None:
            self._leak.level_at_stop = self._leak.level(ts, self.fan)
            self._leak.stopped_at = ts

    # --- commands ------------------------------------------------------------------------------

    def cmd_close_valve(self, _params: NoParams, ts: datetime) -> None:
        self.valve_open = False
        self._stop_source(ts)  # the leak is downstream of the shut-off valve

    def cmd_open_valve(self, _params: NoParams, ts: datetime) -> None:
        level = 0.0 if self._leak is None else self._leak.level(ts, self.fan)
        if level >= REOPEN_BELOW_LEL:
            raise CommandRejected(f"gas still at about {level:.0f} %LEL: ventilate and re-test below "
                                  f"{REOPEN_BELOW_LEL:.0f} %LEL before reopening the supply")
        self.valve_open = True

    def cmd_start_fan(self, _params: NoParams, ts: datetime) -> None:
        self._refreeze(ts)
        self.fan = True

    def cmd_stop_fan(self, _params: NoParams, ts: datetime) -> None:
        self._refreeze(ts)
        self.fan = False

    def _refreeze(self, ts: datetime) -> None:
        """A decaying leak keeps its current level when the fan changes the decay rate."""
        if self._leak is not None and self._leak.stopped_at is not None:
            self._leak.level_at_stop = self._leak.level(ts, self.fan)
            self._leak.stopped_at = ts

