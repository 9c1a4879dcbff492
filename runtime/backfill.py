"""`fmon simulate backfill`: write a simulated site's history straight into the telemetry store.

The simulator (`simulators.backfill`) generates the readings; this module wires it to the
store fmon is configured with (`open_telemetry_store`: InfluxDB or the embedded SQLite) and
writes the maintenance and failure log as CSV next to the data, until the equipment-health
work gives that log a home in the state database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from core.settings import Settings
from runtime.ingest_process import open_telemetry_store
from simulators.backfill import coarsen, history, history_plan, write_log
from simulators.site import demo_estate

Progress = Callable[[int], None]  # called with the simulated seconds covered since the last call


@dataclass(frozen=True, slots=True)
class BackfillOptions:
    site: str
    seed: int
    days: float
    end: datetime
    resolution_s: float = 300.0
    batch_size: int = 5000
    log_path: Path | None = None  # default: <data dir>/backfill-<site>-maintenance.csv


@dataclass(frozen=True, slots=True)
class BackfillResult:
    start: datetime
    end: datetime
    devices: int
    readings: int
    values: int
    log_path: Path
    log_entries: int


def default_log_path(settings: Settings, site: str) -> Path:
    return settings.data_dir / f"backfill-{site}-maintenance.csv"


def run_backfill(settings: Settings, options: BackfillOptions, progress: Progress = lambda _s: None) -> BackfillResult:
    """Generate `options.days` of history ending at `options.end` and write it to the store."""
    start = options.end - timedelta(days=options.days)
    site = coarsen(demo_estate(options.site, options.seed), options.resolution_s)
    plan = history_plan(site, start, options.end, options.seed)
    log_path = options.log_path or default_log_path(settings, options.site)
    store = open_telemetry_store(settings)
    readings = values = reported = 0
    try:
        for now, batch in history(site, plan, batch_size=options.batch_size):
            if batch:
                values += store.write(batch)
                readings += len(batch)
            covered = int((now - start).total_seconds())
            progress(covered - reported)
            reported = covered
    finally:
        store.close()
    write_log(log_path, plan.log)
    return BackfillResult(start, options.end, len(site.devices), readings, values, log_path, len(plan.log))
