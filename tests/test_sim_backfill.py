"""History backfill: days of a site's readings straight into the telemetry store, with the
maintenance and failure log written as CSV next to the data."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.domain import DeviceRef, Family
from core.settings import Settings, load_settings
from runtime.backfill import BackfillOptions, run_backfill
from runtime.ingest_process import open_telemetry_store
from runtime.simulate_cli import simulate

END = datetime(2026, 3, 10, tzinfo=UTC)


def demo_settings(tmp_path: Path) -> Settings:
    return load_settings(environment="demo", data_dir=tmp_path)


def test_backfill_writes_history_with_a_degradation_and_its_log(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path)
    progress: list[int] = []
    result = run_backfill(settings, BackfillOptions("demo", 3, days=3, end=END), progress.append)
    assert sum(progress) == 3 * 86400
    assert result.devices == 26 and result.readings > 15_000 and result.values > 8 * result.readings

    with result.log_path.open(encoding="utf-8") as handle:
        log = list(csv.DictReader(handle))
    assert result.log_path == tmp_path / "backfill-demo-maintenance.csv"
    kinds = [(row["family"], row["kind"]) for row in log]
    for family in ("pump", "elevator"):
        assert [k for f, k in kinds if f == family and k != "maintenance"][:2] == ["degradation_start", "failure"]

    pump_failure = next(row for row in log if row["family"] == "pump" and row["kind"] == "failure")
    failed_at = datetime.fromisoformat(pump_failure["ts"])
    store = open_telemetry_store(settings)
    try:
        pump = DeviceRef("demo", Family.PUMP, pump_failure["device_id"])
        current = store.query(pump, "motor_current_a", END - timedelta(days=3), failed_at)
        running = [p.value for p in current if isinstance(p.value, float) and p.value > 0]
        assert len(running) >= 10
        assert max(running[-5:]) > 1.1 * min(running[:5])  # a wearing pump draws more current
        lift_ref = DeviceRef("demo", Family.ELEVATOR, "el-b1-1")
        lift = store.query(lift_ref, "run_count", END - timedelta(days=3), END + timedelta(seconds=1))
        counts = [p.value for p in lift]
        assert len(counts) == 3 * 288 + 1 and counts == sorted(counts)  # every 5 minutes (--resolution)
    finally:
        store.close()


def test_the_same_seed_and_end_write_the_same_points_again(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path)
    options = BackfillOptions("demo", 1, days=0.5, end=END)
    first = run_backfill(settings, options)
    again = run_backfill(settings, options)
    assert (again.readings, again.values) == (first.readings, first.values)
    store = open_telemetry_store(settings)
    try:
        points = store.query(DeviceRef("demo", Family.METER, "em-b2-main"), "energy_kwh", END - timedelta(days=1),
                             END + timedelta(seconds=1))
    finally:
        store.close()
    assert len(points) == 12 * 4 + 1  # overwritten, not duplicated


def test_fmon_simulate_backfill_shows_progress_and_where_it_wrote(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMON_ENVIRONMENT", "demo")
    monkeypatch.setenv("FMON_DATA_DIR", str(tmp_path))
    run = CliRunner().invoke(simulate, ["backfill", "--days", "1", "--site", "hist", "--end",
                                    "2026-03-10T00:00:00+08:00", "--resolution", "900"])
    assert run.exit_code == 0, run.output
    assert "backfilling 1 days of hist" in run.stderr  # click draws the bar itself only on a terminal
    assert f"written to {tmp_path / 'telemetry.db'}" in run.stdout
    assert (tmp_path / "backfill-hist-maintenance.csv").is_file()
