"""bench/pdm_simulated: failure prediction on simulated wear with known onsets, through fmon's own data path.

Each of `--sites` simulated estates (the demo estate's lifts and pumps, 9 assets) gets 90 days
of history from the simulator's backfill (`simulators.backfill`: half-monthly lift and quarterly
pump maintenance, one lift and one pump wearing out over 10-25 days and failing, repaired a day
or two later). The estates' periods are staggered by 8 days, so that failures spread over the
calendar. Readings go into the embedded telemetry store (SQLite, `--resolution` seconds apart)
and come back with `maintenance.history.telemetry_from_store`; the maintenance and failure log
is written as backfill writes it and read with `events_from_backfill_log` (`degradation_start` is
left out of the model's events: nobody logs when wear begins). Asset type = device family.

Runs the protocol at H = 3 and 7 days, budget 5 %, and, because the simulator knows when wear
began, reports for each evaluated failure how far into its degradation the first alert came.
No error events exist in this history, so the error-count rule degenerates to random order.

    .venv/bin/python -m bench.pdm_simulated [--sites 12] [--resolution 1800]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.pdm_common import run_protocol, write_results
from core.domain import DeviceRef, Family
from maintenance.evaluate import EvalConfig
from maintenance.history import assets_from_devices, events_from_backfill_log, normalize_events, telemetry_from_store
from simulators.backfill import LogEntry, coarsen, history, history_plan, write_log
from simulators.site import demo_estate
from storage.sqlite_telemetry import SqliteTelemetryStore

END = datetime(2026, 9, 1, tzinfo=UTC)
DAYS = 90
STAGGER_DAYS = 8


def simulate(sites: int, resolution_s: float, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame,
                                                                    list[LogEntry]]:
    """Backfill `sites` estates into one SQLite store; return telemetry, events, assets and the full log."""
    store = SqliteTelemetryStore(folder / "telemetry.db")
    devices: list[DeviceRef] = []
    logs: list[LogEntry] = []
    event_frames = []
    try:
        for i in range(sites):
            end = END - timedelta(days=STAGGER_DAYS * (sites - 1 - i))
            estate = demo_estate(f"sim{i:02d}", seed=100 + i)
            keep = [d for d, dev in estate.devices.items() if dev.model.family in (Family.ELEVATOR, Family.PUMP)]
            site = coarsen(estate.only(keep), resolution_s)
            plan = history_plan(site, end - timedelta(days=DAYS), end, seed=100 + i)
            for _, batch in history(site, plan):
                store.write(batch)
            log_path = folder / f"sim{i:02d}-maintenance.csv"
            write_log(log_path, plan.log)
            event_frames.append(events_from_backfill_log(log_path))
            logs += plan.log
            devices += [dev.model.device for dev in site.devices.values()]
        start = END - timedelta(days=DAYS + STAGGER_DAYS * sites)
        telemetry = telemetry_from_store(store, start, END + timedelta(days=1))
    finally:
        store.close()
    return telemetry, normalize_events(pd.concat(event_frames)), assets_from_devices(devices), logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=12)
    parser.add_argument("--resolution", type=float, default=1800.0, help="seconds between a device's readings")
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--budget", type=float, default=0.05)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fmon-sim-pdm-") as tmp:
        telemetry, events, assets, log = simulate(args.sites, args.resolution, Path(tmp))
    kinds = events["kind"].value_counts().to_dict()
    print(f"simulated {args.sites} estates x {DAYS} days in {time.perf_counter() - started:.0f} s: "
          f"{len(telemetry)} readings of {telemetry['asset_id'].nunique()} assets, events {kinds}")
    reports: dict[str, Any] = {}
    onsets = degradation_onsets(log)
    for horizon in (3, 7):
        config = EvalConfig(horizon, alert_budget=args.budget, bootstrap=args.bootstrap)
        report = run_protocol(f"simulated lifts and pumps, H = {horizon} d", telemetry, events, assets, config)
        report["degradation"] = against_onsets(report["events"], onsets)
        reports[f"H{horizon}"] = report
    write_results("pdm_simulated", {"args": vars(args), "reports": reports})


def degradation_onsets(log: list[LogEntry]) -> dict[tuple[str, str], datetime]:
    """(asset id, failure time ISO) -> when that wear began, from the simulator's log."""
    onsets: dict[str, datetime] = {}
    out = {}
    for entry in sorted(log, key=lambda e: e.ts):
        asset = DeviceRef(entry.site, entry.family, entry.device_id).key
        if entry.kind == "degradation_start":
            onsets[asset] = entry.ts
        elif entry.kind == "failure" and asset in onsets:
            out[asset, pd.Timestamp(entry.ts).isoformat()] = onsets.pop(asset)
    return out


def against_onsets(events: list[dict[str, Any]], onsets: dict[tuple[str, str], datetime]) -> dict[str, Any]:
    """Print and return, per evaluated failure of the model, the first alert's place in the degradation."""
    rows = []
    for e in events:
        onset = onsets.get((e["asset_id"], e["failure_at"]))
        if onset is None:
            continue
        failure = pd.Timestamp(e["failure_at"])
        span_days = (failure - pd.Timestamp(onset)) / pd.Timedelta(days=1)
        alert = None if e["first_alert_at"] is None else pd.Timestamp(e["first_alert_at"])
        into = None if alert is None else (alert - pd.Timestamp(onset)) / (failure - pd.Timestamp(onset))
        rows.append({"asset_id": e["asset_id"], "degradation_days": round(span_days, 1),
                     "lead_hours": e["lead_hours"], "alert_at_fraction_of_degradation": into})
    caught = [r for r in rows if r["lead_hours"] is not None]
    fractions = [r["alert_at_fraction_of_degradation"] for r in caught]
    leads = [r["lead_hours"] for r in caught]
    print(f"model vs known wear onsets: {len(caught)} of {len(rows)} failures caught; first alert at "
          f"{_median(fractions)} of the way through the degradation (median), lead {_median(leads, 0)} h")
    for r in rows:
        lead = "missed" if r["lead_hours"] is None else (
            f"lead {r['lead_hours']:.0f} h, alert {r['alert_at_fraction_of_degradation']:.0%} into the wear")
        print(f"  {r['asset_id']:<28} wear over {r['degradation_days']:>5.1f} d: {lead}")
    return {"failures": rows, "median_fraction": _median(fractions, None)}


def _median(values: list[Any], digits: int | None = 2) -> Any:
    if not values:
        return None if digits is None else "-"
    value = float(np.median(values))
    return value if digits is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
