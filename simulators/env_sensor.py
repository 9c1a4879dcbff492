"""An indoor environmental sensor: CO2 follows occupancy, temperature and humidity drift.

Seeded and reproducible: the same seed and times give the same values.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.domain import DeviceRef, MetricValue

Occupancy = Callable[[datetime], float]
OUTDOOR_CO2_PPM = 420.0
PPM_PER_PERSON = 45.0  # steady-state rise per occupant in a small room with normal ventilation


def office_occupancy(ts: datetime) -> float:
    """People in a typical office room by local hour: busy 9-18 on weekdays, empty at night."""
    hour = ts.hour + ts.minute / 60
    if ts.weekday() >= 5 or not 8 <= hour <= 19:
        return 0.0
    return 8.0 * math.sin(math.pi * (hour - 8) / 11)


def crowded(people: float) -> Occupancy:
    """A room with a constant crowd, e.g. a meeting running over."""
    return lambda _ts: people


@dataclass
class EnvSensor:
    device: DeviceRef
    rng: random.Random
    occupancy: Occupancy = office_occupancy
    co2_ppm: float | None = None
    temp_c: float = 23.0

    def sample(self, ts: datetime) -> dict[str, MetricValue]:
        target = OUTDOOR_CO2_PPM + PPM_PER_PERSON * self.occupancy(ts)
        # The room approaches its steady state; start there if this is the first sample.
        current = target if self.co2_ppm is None else self.co2_ppm
        self.co2_ppm = max(OUTDOOR_CO2_PPM - 30, current + 0.3 * (target - current) + self.rng.gauss(0, 8))
        self.temp_c += self.rng.gauss(0, 0.05) + 0.02 * (23.0 - self.temp_c)
        return {
            "co2_ppm": round(self.co2_ppm, 1),
            "temp_c": round(self.temp_c, 2),
            "rh_pct": round(min(95.0, max(20.0, 50 + self.rng.gauss(0, 2))), 1),
            "pm25_ugm3": round(max(0.0, 18 + self.rng.gauss(0, 3)), 1),
            "noise_dba": round(max(25.0, 42 + 2 * self.occupancy(ts) + self.rng.gauss(0, 2)), 1),
        }
