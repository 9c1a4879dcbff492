"""Simulated time: durations as people write them, site-local time, and the accelerated clock.

A simulation runs on *simulated* time. `SimClock` maps a real `core.clock.Clock` onto it:
`speed` times faster, starting at `start`; once an accelerated run has caught up with the real
clock it follows the real clock, so a payload timestamp never lies in the future (ingest
rejects readings more than 5 minutes ahead of its own clock).

Not for: scheduling (the engine does that) or sleeping (the runner does that).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from core.clock import Clock

# China has had no daylight-saving time since 1991, so a fixed offset is exact and needs no tzdata.
CHINA_TZ = timezone(timedelta(hours=8), "CST")

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")
_UNITS = (86400.0, 3600.0, 60.0, 1.0)


def parse_duration(value: object) -> timedelta:
    """`90`, `90s`, `5m`, `1h30m`, `2d`, `1.5h` or a timedelta → timedelta; ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"duration {value!r} is negative")
        return timedelta(seconds=float(value))
    if not isinstance(value, str):
        raise ValueError(f"duration must be a number of seconds or text like '5m', got {value!r}")
    text = value.strip().replace(" ", "")
    match = _DURATION.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"duration {value!r} is not like 90s, 5m, 1h30m or 2d")
    seconds = sum(float(part) * unit for part, unit in zip(match.groups(), _UNITS, strict=True) if part)
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The inverse of `parse_duration` for whole seconds: 5430 s → '1h30m30s'."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, name in zip((86400, 3600, 60, 1), "dhms", strict=True):
        if seconds >= unit:
            parts.append(f"{seconds // unit}{name}")
            seconds %= unit
    return "".join(parts) or "0s"


def iso_ms(ts: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a `Z`, as the v1 contract shows it."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local(ts: datetime, tz: tzinfo) -> datetime:
    return ts.astimezone(tz)


class SimClock:
    """Simulated time driven by a real clock: `speed`× from `start`, never ahead of the real clock.

    With `start` in the past and `speed` > 1 the simulation replays the past quickly, then
    continues in real time once it reaches the present.
    """

    def __init__(self, clock: Clock, *, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._clock, self.speed = clock, speed
        self._real0 = clock.now()
        self._sim0 = start or self._real0
        if self._sim0 > self._real0:
            raise ValueError(f"simulation start {iso_ms(self._sim0)} is in the future")

    def now(self) -> datetime:
        real = self._clock.now()
        return min(self._sim0 + (real - self._real0) * self.speed, real)

    def caught_up(self) -> bool:
        """True once accelerated time has reached the real clock (from then on it runs at 1×)."""
        real = self._clock.now()
        return self._sim0 + (real - self._real0) * self.speed >= real

    def real_seconds_until(self, when: datetime) -> float:
        """Real seconds to wait until simulated time reaches `when` (0 if it already has)."""
        ahead = (when - self.now()).total_seconds()
        if ahead <= 0:
            return 0.0
        return ahead if self.caught_up() else ahead / self.speed


def accelerated_start(now: datetime, sim_duration: timedelta, speed: float) -> datetime:
    """Where to start so that `sim_duration` of simulated time at `speed` ends at about `now + real time`.

    A run of D simulated seconds at speed X takes D/X real seconds; starting D − D/X in the past
    makes it end exactly as it catches up with the real clock.
    """
    if speed <= 1:
        return now
    return now - sim_duration + sim_duration / speed
