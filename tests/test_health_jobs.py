"""Equipment-health jobs on fmon's own data: planned work, retraining and daily scores, once each.

Four lifts of the example ledger report hourly for 60 days into the embedded telemetry store;
three failed after their vibration rose for a few days (corrective work orders), a fourth is
rising now. The jobs plan the work orders, train on this history, score the missed days and
record the risks; run again, they do nothing twice.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.domain import DeviceRef, Family, Reading
from maintenance import workorders
from runtime.health_jobs import HealthJobs
from storage.sqlite_telemetry import SqliteTelemetryStore
from storage.state.database import StateDatabase
from storage.state.equipment_models import EquipmentRisk, WorkOrder
from tests.equipment_support import seed

START = datetime(2026, 9, 1, tzinfo=UTC)
DAYS = 60
LIFTS = {"el-b1-1": "DT-B1-001", "el-b1-2": "DT-B1-002", "el-b2-1": "DT-B2-001", "el-b2-2": "DT-B2-002"}
FAILURES = [("el-b1-1", 14), ("el-b1-2", 27), ("el-b2-1", 41), ("el-b1-1", 50)]  # (lift, day)
WEARING = "el-b2-2"  # rising over the last days, not failed yet


def vibration(device: str, t: datetime, rng: random.Random) -> float:
    """Healthy around 20 mg; rising over the 5 days before each failure (and for the wearing lift)."""
    ends = [START + timedelta(days=day) for lift, day in FAILURES if lift == device]
    if device == WEARING:
        ends.append(START + timedelta(days=DAYS + 1))
    wear = max((1 - (end - t) / timedelta(days=5) for end in ends if timedelta(0) <= end - t <= timedelta(days=5)),
               default=0.0)
    return round(20 + 40 * wear + rng.gauss(0, 2), 2)


class Unreadable:
    def scan(self, start: datetime, end: datetime, *, site: str | None = None) -> Iterator[Reading]:
        raise AssertionError("the telemetry was read")


@pytest.fixture
def history(tmp_path: Path) -> tuple[StateDatabase, SqliteTelemetryStore]:
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    seed(db)
    store = SqliteTelemetryStore(tmp_path / "telemetry.db")
    rng = random.Random(5)
    for hour in range(DAYS * 24):
        t = START + timedelta(hours=hour)
        store.write([Reading(DeviceRef("demo", Family.ELEVATOR, d), t,
                             {"vibration_mg": vibration(d, t, rng), "motor_current_a": round(30 + rng.gauss(0, 1), 2)})
                     for d in LIFTS])
    with db.session() as session:
        for lift, day in FAILURES:
            workorders.create(session, workorders.NewWorkOrder(LIFTS[lift], title="lift stopped"), "operator",
                              START + timedelta(days=day))
    yield db, store
    store.close()
    db.dispose()


def test_jobs_plan_train_score_and_do_nothing_twice(history: tuple[StateDatabase, SqliteTelemetryStore],
                                                    tmp_path: Path) -> None:
    db, store = history
    jobs = HealthJobs(db, store, tmp_path / "models")
    now = START + timedelta(days=DAYS, hours=1)

    done = jobs.run(now)
    assert done[0].startswith("planned work orders:") and " 0 new" not in done[0]
    assert done[1].startswith("retrained") and "no model yet" in done[1]
    assert [line.split(":")[0] for line in done[2:]] == [
        f"scored {(now - timedelta(days=d)).date()}" for d in range(7, 0, -1)]  # the missed week, oldest first
    with db.session() as session:
        latest = session.scalar(select(func.max(EquipmentRisk.scored_at)))
        risks = {r.equipment_id: r.probability for r in session.scalars(select(EquipmentRisk))}
        planned = session.scalar(select(func.count()).select_from(WorkOrder).where(WorkOrder.kind == "planned"))
    assert latest is not None and set(risks) == set(LIFTS.values())
    assert all(0.0 <= p <= 1.0 for p in risks.values())
    assert planned and planned > 0

    assert jobs.run(now)[1:] == []  # nothing retrained or rescored, also from a new object (restart)
    # with nothing due, the telemetry is not even read
    assert HealthJobs(db, Unreadable(), tmp_path / "models").run(now + timedelta(hours=2))[1:] == []
    later = HealthJobs(db, store, tmp_path / "models").run(now + timedelta(days=1))
    assert [line.split(":")[0] for line in later[1:]] == [f"scored {now.date()}"]


def test_the_wearing_lift_is_the_riskiest_on_the_last_day(history: tuple[StateDatabase, SqliteTelemetryStore],
                                                          tmp_path: Path) -> None:
    db, store = history
    HealthJobs(db, store, tmp_path / "models").run(START + timedelta(days=DAYS, hours=1))
    with db.session() as session:
        last = session.scalar(select(func.max(EquipmentRisk.scored_at)))
        rows = list(session.scalars(select(EquipmentRisk).where(EquipmentRisk.scored_at == last)))
    by_lift = {}
    for row in rows:  # one scoring run records every scored day at the same time: keep the highest
        by_lift[row.equipment_id] = max(by_lift.get(row.equipment_id, 0.0), row.probability)
    assert max(by_lift, key=by_lift.__getitem__) == LIFTS[WEARING]
