"""Daily and weekly load shapes, smooth seeded noise, and the weather shared by a site's devices.

Every function here is a pure function of (seed, time): the value at a time does not depend on
which devices asked before, or how often. That keeps a device's readings the same whether it is
simulated alone (a scenario test) or with the whole site.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import datetime, tzinfo

DAY_S = 86400.0


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from the parts' text; unlike `hash()` it is the same in every process."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def device_rng(seed: int, device_id: str) -> random.Random:
    """The random generator of one device: depends only on the site seed and the device id."""
    return random.Random(stable_seed(seed, device_id))


def hour_of_day(local_ts: datetime) -> float:
    return local_ts.hour + local_ts.minute / 60 + local_ts.second / 3600


def is_workday(local_ts: datetime) -> bool:
    """Monday to Friday (public holidays are not modelled)."""
    return local_ts.weekday() < 5


def bump(hour: float, centre: float, width: float) -> float:
    """A Gaussian bump of height 1 at `centre` (hours), wrapping around midnight."""
    distance = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-0.5 * (distance / width) ** 2)


def plateau(hour: float, start: float, end: float, edge: float = 0.75) -> float:
    """1 between `start` and `end` (hours), with smooth edges `edge` hours wide; 0 outside."""
    rise = 1 / (1 + math.exp(-(hour - start) / (edge / 4)))
    fall = 1 / (1 + math.exp((hour - end) / (edge / 4)))
    return rise * fall


@dataclass(frozen=True, slots=True)
class Peak:
    centre: float  # local hour
    width: float  # hours (standard deviation of the bump)
    height: float


def peaks(hour: float, items: tuple[Peak, ...], base: float) -> float:
    return base + sum(p.height * bump(hour, p.centre, p.width) for p in items)


class ValueNoise:
    """Smooth seeded noise in [-1, 1]: random values at knots `period_s` apart, cosine-interpolated.

    A pure function of time, so any device (or a re-run) sees the same value at the same time.
    """

    def __init__(self, seed: int, period_s: float) -> None:
        self._seed, self._period = seed, period_s

    def _knot(self, index: int) -> float:
        return random.Random(stable_seed(self._seed, index)).uniform(-1.0, 1.0)

    def __call__(self, ts: datetime) -> float:
        position = ts.timestamp() / self._period
        index = math.floor(position)
        frac = (1 - math.cos(math.pi * (position - index))) / 2
        return self._knot(index) * (1 - frac) + self._knot(index + 1) * frac


class Weather:
    """Outdoor conditions of one site (a north-China city): temperature, humidity, PM2.5.

    Annual and daily cycles plus multi-day weather noise, seeded per site.
    """

    def __init__(self, seed: int, tz: tzinfo) -> None:
        self.tz = tz
        self._temp_noise = ValueNoise(stable_seed(seed, "temp"), 2 * DAY_S)
        self._rh_noise = ValueNoise(stable_seed(seed, "rh"), DAY_S)
        self._pm_episode = ValueNoise(stable_seed(seed, "pm"), 3 * DAY_S)
        self._pm_hourly = ValueNoise(stable_seed(seed, "pm-h"), 3 * 3600)

    def temp_c(self, ts: datetime) -> float:
        """Annual mean 12.5 °C, ±15 °C (coldest about 20 January), ±4 °C day/night, ±3 °C weather."""
        local = ts.astimezone(self.tz)
        day = local.timetuple().tm_yday + hour_of_day(local) / 24
        annual = 12.5 - 15 * math.cos(2 * math.pi * (day - 20) / 365.25)
        daily = -4 * math.cos(2 * math.pi * (hour_of_day(local) - 3) / 24)
        return annual + daily + 3 * self._temp_noise(ts)

    def rh_pct(self, ts: datetime) -> float:
        local = ts.astimezone(self.tz)
        return min(98.0, max(15.0, 55 + 15 * math.cos(2 * math.pi * (hour_of_day(local) - 5) / 24)
                             + 20 * self._rh_noise(ts)))

    def pm25_ugm3(self, ts: datetime) -> float:
        """Clean days near 20 µg/m³, haze episodes of a few days above 150; worse at night and in winter."""
        local = ts.astimezone(self.tz)
        winter = 1 + 0.6 * math.cos(2 * math.pi * (local.timetuple().tm_yday - 15) / 365.25)
        episode = math.exp(1.6 * self._pm_episode(ts))  # log-normal: mostly clean, sometimes bad
        diurnal = 1 + 0.25 * math.cos(2 * math.pi * (hour_of_day(local) - 22) / 24)
        return max(3.0, 25 * winter * episode * diurnal * (1 + 0.15 * self._pm_hourly(ts)))

    def heating_season(self, ts: datetime) -> bool:
        """Northern China's district heating runs 15 November – 15 March."""
        local = ts.astimezone(self.tz)
        month_day = (local.month, local.day)
        return month_day >= (11, 15) or month_day <= (3, 15)
