"""A site's history, generated at full speed: days of readings with maintenance and failures.

`history_plan` decides what happened to the equipment over the period (seeded): half-monthly
lift maintenance (TSG T5002 半月保), quarterly pump maintenance, and some slow degradations
ending in failure and repair. It returns the steps to play and the maintenance and failure log.
`history` plays them through the engine and yields readings in batches, for a telemetry store.

The log is what an equipment-health model learns from: runtime/backfill.py records it in the
state database as work orders (a corrective one per failure, a done planned one per maintenance)
and exports it as CSV (docs/simulators.md).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Literal

from core.domain import Family, Reading
from simulators.engine import SimEngine
from simulators.models import ElevatorModel, PumpModel
from simulators.models.base import NoParams, Params
from simulators.models.curves import stable_seed
from simulators.models.elevator import DegradeParams as LiftDegrade
from simulators.models.elevator import InspectionParams
from simulators.models.pump import DegradeParams as PumpDegrade
from simulators.models.pump import ModeParams
from simulators.scenario import BoundStep
from simulators.site import Site

LogKind = Literal["maintenance", "degradation_start", "failure", "repair"]
LOG_COLUMNS = ("ts", "site", "family", "device_id", "kind", "detail")


@dataclass(frozen=True, slots=True)
class LogEntry:
    ts: datetime
    site: str
    family: Family
    device_id: str
    kind: LogKind
    detail: str
    until: datetime | None = None  # maintenance: when the work ended; failure: the repair (None: not yet)


@dataclass(frozen=True, slots=True)
class HistoryPlan:
    start: datetime
    end: datetime
    steps: tuple[BoundStep, ...]
    log: tuple[LogEntry, ...]


class _Planner:
    def __init__(self, site: Site, start: datetime, end: datetime, seed: int) -> None:
        self.site, self.start, self.end = site, start, end
        self.rng = random.Random(stable_seed(seed, "history"))
        self.steps: list[BoundStep] = []
        self.log: list[LogEntry] = []

    def add(self, when: datetime, device_id: str, action: str, params: Params,
            entry: tuple[LogKind, str] | None = None, until: datetime | None = None) -> None:
        if not self.start <= when < self.end:
            return
        self.steps.append(BoundStep(when - self.start, action, params, device_id=device_id))
        if entry is not None:
            self.log_entry(when, device_id, *entry, until=until)

    def log_entry(self, when: datetime, device_id: str, kind: LogKind, detail: str,
                  until: datetime | None = None) -> None:
        family = self.site.device(device_id).model.family
        self.log.append(LogEntry(when, self.site.site_id, family, device_id, kind, detail, until))

    def local_day(self, day: int, hour: float) -> datetime:
        """`hour` o'clock local time, `day` days after the start."""
        date = (self.start.astimezone(self.site.tz) + timedelta(days=day)).date()
        clock = time(int(hour), int(hour % 1 * 60), tzinfo=self.site.tz)
        return datetime.combine(date, clock)


def history_plan(site: Site, start: datetime, end: datetime, seed: int) -> HistoryPlan:
    planner = _Planner(site, start, end, seed)
    days = max(1, (end - start).days)
    lifts = [d for d, dev in site.devices.items() if isinstance(dev.model, ElevatorModel)]
    pumps = [d for d, dev in site.devices.items() if isinstance(dev.model, PumpModel)
             and dev.model.role in ("supply", "sump")]
    for device_id in lifts:
        _lift_maintenance(planner, device_id, days)
    for device_id in pumps:
        _pump_maintenance(planner, device_id, days)
    if lifts:
        _failure(planner, planner.rng.choice(lifts), lift=True)
    if pumps:
        _failure(planner, planner.rng.choice(pumps), lift=False)
    steps = sorted(planner.steps, key=lambda s: s.at)
    return HistoryPlan(start, end, tuple(steps), tuple(sorted(planner.log, key=lambda e: e.ts)))


def _lift_maintenance(planner: _Planner, device_id: str, days: int) -> None:
    """Half-monthly maintenance: an hour in inspection mode on a weekday morning."""
    first = planner.rng.randrange(15)
    for day in range(first, days, 15):
        begin = planner.local_day(day, 9.5 + planner.rng.random() * 4)
        while begin.weekday() >= 5:
            begin += timedelta(days=1)
        planner.add(begin, device_id, "inspection", InspectionParams(active=True),
                    ("maintenance", "half-monthly maintenance (半月保)"), until=begin + timedelta(hours=1))
        planner.add(begin + timedelta(hours=1), device_id, "inspection", InspectionParams(active=False))


def _pump_maintenance(planner: _Planner, device_id: str, days: int) -> None:
    """Quarterly maintenance: the pump is stopped for two hours."""
    for day in range(planner.rng.randrange(min(days, 90)), days, 90):
        begin = planner.local_day(day, 10)
        params = ModeParams.model_validate({"mode": "off", "for": timedelta(hours=2)})
        planner.add(begin, device_id, "mode", params, ("maintenance", "quarterly maintenance: bearings greased"),
                    until=begin + timedelta(hours=2))


def _failure(planner: _Planner, device_id: str, *, lift: bool) -> None:
    """A degradation over 10-25 days (shorter in short histories) ending in failure, repaired 1-2 days later."""
    span = planner.end - planner.start
    onset = (planner.start + span * planner.rng.uniform(0.1, 0.45)).replace(microsecond=0)
    over = min(timedelta(days=planner.rng.uniform(10, 25)), span * 0.35)
    over = timedelta(seconds=round(over.total_seconds()))
    fail_at = onset + over
    repair_at = fail_at + timedelta(hours=round(min(planner.rng.uniform(24, 48), span.total_seconds() / 36000)))
    if lift:
        code = planner.rng.choice((1, 2, 3))
        params: Params = LiftDegrade.model_validate({"over": over, "fail_with": code})
        what = f"fault {code}"
    else:
        params = PumpDegrade.model_validate({"over": over, "fail": True})
        what = "bearing failure, motor tripped on overload"
    planner.add(onset, device_id, "degrade", params, ("degradation_start", f"wear begins; fails in {over.days} days"))
    if fail_at < planner.end:
        planner.log_entry(fail_at, device_id, "failure", what, until=repair_at if repair_at < planner.end else None)
    planner.add(repair_at, device_id, "repair", NoParams(), ("repair", "repaired and returned to service"))


def history(site: Site, plan: HistoryPlan, *, batch_size: int = 5000) -> Iterator[tuple[datetime, list[Reading]]]:
    """Play `plan` on `site`; yield (simulated time reached, readings) in batches of about `batch_size`."""
    engine = SimEngine(site, plan.start, plan.steps)
    now, batch = plan.start, []
    while now <= plan.end:
        batch += [reading for _, reading in engine.step(now).readings]
        if len(batch) >= batch_size:
            yield now, batch
            batch = []
        now = max(engine.next_wakeup(), now + timedelta(milliseconds=100))
    yield plan.end, batch


def coarsen(site: Site, resolution_s: float) -> Site:
    """Report no more often than every `resolution_s` (history for trends, not for every lift trip)."""
    for device in site.devices.values():
        device.model.interval_s = max(device.model.interval_s, resolution_s)
    return site


def write_log(path: Path, log: Sequence[LogEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(LOG_COLUMNS)
        for entry in log:
            stamp = entry.ts.astimezone(UTC).isoformat(timespec="seconds")
            writer.writerow((stamp, entry.site, entry.family.value, entry.device_id, entry.kind, entry.detail))
