"""History backfill: days of a site's readings straight into the telemetry store, with the
maintenance and failure log recorded in the state database as work orders (on SQLite and
PostgreSQL), where the equipment-health jobs find it, and exported as CSV next to the data."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core.domain import DeviceRef, Family
from core.settings import Settings, load_settings
from maintenance.fleet import fleet_history
from maintenance.workorders import failures_since
from runtime.backfill import BackfillOptions, run_backfill
from runtime.simulate_cli import simulate
from runtime.stores import open_telemetry_store
from storage.state.database import StateDatabase
from storage.state.equipment_models import WorkOrder, equipment_of_device

END = datetime(2026, 3, 10, tzinfo=UTC)


def demo_settings(tmp_path: Path) -> Settings:
    return load_settings(environment="demo", data_dir=tmp_path)


def test_backfill_writes_history_with_a_degradation_and_its_log(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path)
    progress: list[int] = []
    result = run_backfill(settings, BackfillOptions("demo", 3, days=3, end=END), progress.append)
    assert sum(progress) == 3 * 86400
    assert result.devices == 26 and result.readings > 15_000 and result.values > 8 * result.readings

    log = read_log(result.log_path)
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


def read_log(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_backfill_records_failures_and_maintenance_as_work_orders_the_health_jobs_see(
        state_db: StateDatabase, tmp_path: Path) -> None:
    settings = load_settings(environment="demo", data_dir=tmp_path, database_url=state_db.url)
    start = END - timedelta(days=3)
    result = run_backfill(settings, BackfillOptions("demo", 3, days=3, end=END, resolution_s=900))
    log = read_log(result.log_path)
    failures = [row for row in log if row["kind"] == "failure"]
    repairs = {row["device_id"]: datetime.fromisoformat(row["ts"]) for row in log if row["kind"] == "repair"}
    maintenance = [row for row in log if row["kind"] == "maintenance"]
    assert len(failures) == 2 and maintenance  # a lift and a pump; the pumps' quarterly maintenance
    assert result.ledger.seeded and not result.ledger.unmatched
    assert (result.ledger.failures, result.ledger.maintenance) == (2, len(maintenance))

    with state_db.session() as session:
        assert failures_since(session, start) == 2
        orders = list(session.scalars(select(WorkOrder).where(WorkOrder.created_by == "backfill")))
        for row in failures:  # opened at the failure on the device's equipment, done at the repair
            code = equipment_of_device(session, "demo", row["family"], row["device_id"])
            order = next(o for o in orders if o.kind == "corrective" and [o.equipment_id] == code)
            assert order.created_at == datetime.fromisoformat(row["ts"])
            assert (order.status, order.completed_at) == ("done", repairs[row["device_id"]])
        planned = [o for o in orders if o.kind == "planned"]
        assert len(planned) == len(maintenance) and {o.status for o in planned} == {"done"}
        store = open_telemetry_store(settings)
        try:
            history = fleet_history(session, store, start, END)  # what the health jobs train on
        finally:
            store.close()
    assert history.failures == 2
    assert (history.events["kind"] == "maintenance").sum() == len(maintenance)

    again = run_backfill(settings, BackfillOptions("demo", 3, days=3, end=END, resolution_s=900))
    assert (again.ledger.failures, again.ledger.maintenance, again.ledger.existing) == (0, 0, 2 + len(maintenance))
    with state_db.session() as session:
        assert failures_since(session, start) == 2  # recorded once


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
    elsewhere = tmp_path / "elsewhere.db"
    run = CliRunner().invoke(simulate, ["backfill", "--days", "1", "--site", "hist", "--end",
                                    "2026-03-10T00:00:00+08:00", "--resolution", "900",
                                    "--database", f"sqlite:///{elsewhere}"])
    assert run.exit_code == 0, run.output
    assert "backfilling 1 days of hist" in run.stderr  # click draws the bar itself only on a terminal
    assert f"written to {tmp_path / 'telemetry.db'}" in run.stdout
    # Another site than the demo's has no equipment in the ledger: said, not silently dropped.
    assert f"state database sqlite:///{elsewhere}: 0 corrective work orders" in run.stdout
    assert "not in the equipment ledger, left out: elevator/" in run.stdout
    assert elsewhere.is_file() and not (tmp_path / "state.db").exists()
    assert (tmp_path / "backfill-hist-maintenance.csv").is_file()
