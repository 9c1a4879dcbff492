"""`fmon simulate backfill`: write a simulated site's history into the telemetry store and the
state database.

The simulator (`simulators.backfill`) generates the readings and the maintenance and failure
log; this module wires them to fmon's stores: the readings to the configured telemetry store
(`open_telemetry_store`: InfluxDB or the embedded SQLite), the log to the state database as work
orders (`runtime.backfill_log`), where the equipment-health jobs learn from it, and the log again
as a CSV export.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from core.settings import Settings
from runtime.backfill_log import LedgerReport, record_log
from runtime.stores import open_telemetry_store
from simulators.backfill import HistoryPlan, coarsen, history, history_plan, write_log
from simulators.site import Site, demo_estate

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
    ledger: LedgerReport


def default_log_path(settings: Settings, site: str) -> Path:
    return settings.data_dir / f"backfill-{site}-maintenance.csv"


def run_backfill(settings: Settings, options: BackfillOptions, progress: Progress = lambda _s: None) -> BackfillResult:
    """Generate `options.days` of history ending at `options.end`; write the readings to the
    telemetry store, the maintenance and failure log to the state database and to CSV."""
    start = options.end - timedelta(days=options.days)
    site = coarsen(demo_estate(options.site, options.seed), options.resolution_s)
    plan = history_plan(site, start, options.end, options.seed)
    log_path = options.log_path or default_log_path(settings, options.site)
    # The log first: a bad state database fails in a second, not after the whole history.
    ledger = _record(settings, plan)
    readings, values = _write_readings(settings, site, plan, start, progress, options.batch_size)
    write_log(log_path, plan.log)
    return BackfillResult(start, options.end, len(site.devices), readings, values, log_path, len(plan.log), ledger)


def _record(settings: Settings, plan: HistoryPlan) -> LedgerReport:
    from storage.state.database import StateDatabase

    db = StateDatabase(settings.state_database_url)
    try:
        db.upgrade()
        return record_log(db, plan)
    finally:
        db.dispose()


def _write_readings(settings: Settings, site: Site, plan: HistoryPlan, start: datetime, progress: Progress,
                    batch_size: int) -> tuple[int, int]:
    store = open_telemetry_store(settings)
    readings = values = reported = 0
    try:
        for now, batch in history(site, plan, batch_size=batch_size):
            if batch:
                values += store.write(batch)
                readings += len(batch)
            covered = int((now - start).total_seconds())
            progress(covered - reported)
            reported = covered
    finally:
        store.close()
    return readings, values
