"""The telemetry store interface and the building of stores from a URL.

A store takes batches of readings; writing the same (device, metric, ts) again overwrites,
so replays after a crash are idempotent (as InfluxDB does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.domain import DeviceRef, Reading


@dataclass(frozen=True, slots=True)
class Point:
    """One stored value of one metric."""

    ts: datetime
    value: float | bool | str


class TelemetryStore(Protocol):
    """Where readings are kept. Implementations: `InfluxV1Store`, `SqliteTelemetryStore`."""

    def write(self, readings: Sequence[Reading]) -> int:
        """Store a batch; return the number of values written. Raises `StorageError`."""
        ...

    def query(self, device: DeviceRef, metric: str, start: datetime, end: datetime) -> list[Point]:
        """Values of one metric of one device in [start, end), oldest first."""
        ...

    def close(self) -> None: ...
