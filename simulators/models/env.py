"""Environmental sensors (GB/T 18883 indoor air, GB 3096 noise).

Indoor: CO2 follows the people in the room (a first-order approach to the steady state of
outdoor CO2 + 45 ppm per person), particulates follow the outdoor air through the envelope,
TVOC rises with occupancy, noise with activity. Outdoor: the site's weather, PM2.5 episodes,
and day/night traffic noise (GB 3096 class 1: 55 dB(A) day, 45 night).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from core.domain import Family, MetricValue
from simulators.models.base import DeviceModel, Duration, Params, Table
from simulators.models.curves import hour_of_day, is_workday, plateau

Occupancy = Callable[[datetime], float]
OUTDOOR_CO2_PPM = 420.0
PPM_PER_PERSON = 45.0  # steady-state rise per occupant in a small room with normal ventilation
AIR_CHANGE_S = 900.0  # time constant of a room's air towards its steady state (about 4 air changes an hour)
INFILTRATION = 0.45  # share of outdoor PM2.5 that reaches a closed, ventilated room


def office_occupancy(local_ts: datetime) -> float:
    """People in a typical office room by local hour: busy 9-18 on workdays, empty at night."""
    hour = hour_of_day(local_ts)
    if not is_workday(local_ts) or not 8 <= hour <= 19:
        return 0.0
    return 8.0 * math.sin(math.pi * (hour - 8) / 11)


def lobby_occupancy(local_ts: datetime) -> float:
    """People passing through a lobby: rush hours, lighter at weekends."""
    hour = hour_of_day(local_ts)
    scale = 1.0 if is_workday(local_ts) else 0.5
    return scale * (2 + 10 * math.exp(-0.5 * ((hour - 8.3) / 0.7) ** 2) + 8 * math.exp(-0.5 * ((hour - 18) / 1) ** 2)) \
        * plateau(hour, 6, 23)


def crowded(people: float) -> Occupancy:
    """A room with a constant crowd, e.g. a meeting running over."""
    return lambda _ts: people


class CrowdParams(Params):
    people: float
    duration: Duration | None = Field(None, alias="for")


class EnvSensor(DeviceModel):
    """An indoor (`outdoor=False`) or outdoor air-quality and noise sensor."""

    family = Family.ENV
    ACTIONS: ClassVar[Table] = {"crowd": CrowdParams}

    def __init__(self, *args: Any, occupancy: Occupancy = office_occupancy, outdoor: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.occupancy, self.outdoor = occupancy, outdoor
        self.co2_ppm: float | None = None
        self.temp_c = 23.0
        self._last: datetime | None = None
        self._crowd: tuple[float, datetime | None] | None = None
        self._hcho_base = self.rng.uniform(0.015, 0.05)

    def people(self, ts: datetime) -> float:
        if self._crowd is not None:
            people, until = self._crowd
            if until is None or ts < until:
                return people
            self._crowd = None
        return self.occupancy(ts.astimezone(self.tz))

    def act_crowd(self, params: CrowdParams, ts: datetime) -> None:
        self._crowd = (params.people, None if params.duration is None else ts + params.duration)

    def _sample(self, ts: datetime) -> dict[str, MetricValue]:
        return self._outdoor(ts) if self.outdoor else self._indoor(ts)

    def _indoor(self, ts: datetime) -> dict[str, MetricValue]:
        people = self.people(ts)
        target = OUTDOOR_CO2_PPM + PPM_PER_PERSON * people
        # The room approaches its steady state; start there if this is the first sample.
        current = target if self.co2_ppm is None else self.co2_ppm
        elapsed = 0.0 if self._last is None else max(0.0, (ts - self._last).total_seconds())
        self._last = ts
        approach = 1 - math.exp(-elapsed / AIR_CHANGE_S)
        self.co2_ppm = max(OUTDOOR_CO2_PPM - 30, current + approach * (target - current) + self.rng.gauss(0, 8))
        self.temp_c += self.rng.gauss(0, 0.05) + 0.02 * (23.0 + 0.15 * people - self.temp_c)
        pm25 = INFILTRATION * self.weather.pm25_ugm3(ts) + 3 + abs(self.rng.gauss(0, 2))
        return {
            "co2_ppm": round(self.co2_ppm, 1),
            "temp_c": round(self.temp_c, 2),
            "rh_pct": round(min(95.0, max(20.0, 45 + 0.2 * (self.weather.rh_pct(ts) - 55) + self.rng.gauss(0, 2))), 1),
            "pm25_ugm3": round(pm25, 1),
            "pm10_ugm3": round(pm25 * 1.35 + abs(self.rng.gauss(0, 3)), 1),
            "tvoc_mgm3": round(max(0.02, 0.12 + 0.02 * people + self.rng.gauss(0, 0.02)), 3),
            "hcho_mgm3": round(max(0.0, self._hcho_base + self.rng.gauss(0, 0.004)), 3),
            "noise_dba": round(max(25.0, 38 + 2 * min(people, 10) + self.rng.gauss(0, 2)), 1),
        }

    def _outdoor(self, ts: datetime) -> dict[str, MetricValue]:
        local = ts.astimezone(self.tz)
        day: Literal[0, 1] = 1 if 6 <= local.hour < 22 else 0  # GB 3096: day 06:00-22:00
        traffic = 7 * plateau(hour_of_day(local), 7, 20) if day else 0.0
        pm25 = self.weather.pm25_ugm3(ts) * (1 + self.rng.gauss(0, 0.05))
        return {
            "temp_c": round(self.weather.temp_c(ts) + self.rng.gauss(0, 0.2), 2),
            "rh_pct": round(self.weather.rh_pct(ts), 1),
            "co2_ppm": round(OUTDOOR_CO2_PPM + self.rng.gauss(0, 6), 1),
            "pm25_ugm3": round(max(1.0, pm25), 1),
            "pm10_ugm3": round(max(2.0, pm25 * 1.6 + self.rng.gauss(0, 4)), 1),
            "noise_dba": round(40 + 4 * day + traffic + self.rng.gauss(0, 1.5), 1),
        }

    def metric_names(self) -> tuple[str, ...]:
        names = super().metric_names()
        return tuple(n for n in names if n not in ("tvoc_mgm3", "hcho_mgm3")) if self.outdoor else names

    def _kind_label(self) -> str:
        return "outdoor env sensor" if self.outdoor else "indoor env sensor"
