"""The telemetry store interface and the building of stores from a URL.

A store takes batches of readings: their metric values and their events (fire-panel point
events, resets, meter tamper, lift faults…). Writing the same (device, metric, ts) again
overwrites, and so does the same (device, ts, position of the event in its reading), so replays
after a crash are idempotent (as InfluxDB does) while two events of one reading never overwrite
each other. Readings of one device with the same millisecond timestamp are one reading here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from core.domain import DeviceRef, Family, MetricValue, Reading
from core.schema import metric_spec


@dataclass(frozen=True, slots=True)
class Point:
    """One stored value of one metric."""

    ts: datetime
    value: float | bool | str


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One stored event of one device: its reading's time, code, position in the reading and
    attributes (typed ones, `core.schema.EVENT_ATTRS`, with their type; others as text in
    InfluxDB, as sent in SQLite)."""

    ts: datetime
    code: str
    index: int
    attrs: Mapping[str, MetricValue]
    seq: int | None = None
    historical: bool = False


@dataclass(frozen=True, slots=True)
class Bucket:
    """One time bucket of a downsampled numeric metric: [start, start + step)."""

    start: datetime
    mean: float
    low: float
    high: float
    count: int


def history_step(start: datetime, end: datetime, points: int) -> timedelta:
    """The bucket width that gives about `points` buckets over [start, end): whole seconds, at least one."""
    seconds = max(1, -(-int((end - start).total_seconds()) // max(1, points)))
    return timedelta(seconds=seconds)


class TelemetryStore(Protocol):
    """Where readings are kept. Implementations: `InfluxV1Store`, `SqliteTelemetryStore`."""

    def write(self, readings: Sequence[Reading]) -> int:
        """Store a batch (metric values and events); return the number of metric values written.
        Raises `StorageError`."""
        ...

    def events(self, device: DeviceRef, start: datetime, end: datetime) -> list[StoredEvent]:
        """Events of one device with ts in [start, end), oldest first (in reading order)."""
        ...

    def query(self, device: DeviceRef, metric: str, start: datetime, end: datetime) -> list[Point]:
        """Values of one metric of one device in [start, end), oldest first."""
        ...

    def history(self, device: DeviceRef, metric: str, start: datetime, end: datetime,
                step: timedelta) -> list[Bucket]:
        """A numeric metric of one device in [start, end) downsampled in the store to buckets of
        `step` (aligned to the epoch): mean, min, max and count of each non-empty bucket, oldest
        first. Text values are left out."""
        ...

    def scan(self, start: datetime, end: datetime, *, site: str | None = None) -> Iterator[Reading]:
        """Every stored reading with ts in [start, end) (of one site, if given), oldest first.

        The values one device reported at one time come back as one `Reading`, with the metric
        types of the schema restored (`stored_value`); readings come back without their events
        (read those with `events`). For replaying history (backtests), not for the hot path.
        """
        ...

    def close(self) -> None: ...


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stored_value(family: Family, metric: str, value: float | bool | str) -> MetricValue:
    """A stored value as ingest decoded it: stores keep every number as a float (and SQLite
    booleans as 0/1), the schema says which were integers (status words) or booleans."""
    if isinstance(value, str):
        return value
    spec = metric_spec(family, metric)
    kind = spec.type if spec is not None else "number"
    if kind == "boolean":
        return bool(value)
    if kind == "integer" and float(value).is_integer():
        return int(value)
    return value if isinstance(value, bool) else float(value)


def from_epoch_ms(ms: int) -> datetime:
    """Exact UTC time of an epoch-milliseconds timestamp (no float rounding)."""
    return _EPOCH + timedelta(milliseconds=ms)

