"""Shared set-up of the equipment-ledger tests: the demo estate's registry, ledger and roster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alarms.maintenance import MaintenanceStage
from alarms.service import AlarmService
from core.clock import FakeClock
from core.domain import DeviceRef, Family, Reading
from ingest.inventory import load_inventory
from maintenance import ledger, roster
from rules.engine import RuleEngine
from rules.loader import rule_by_id
from storage.state.database import StateDatabase
from storage.state.registry import RegistryStore

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
LEDGER_CSV = EXAMPLES / "equipment.csv"
T0 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)  # Saturday 08:00 in Asia/Shanghai
ROSTER = """\
id,name,skills,capacity_min,shift_start,shift_end,contractor,active
lift.a,电梯维保A,elevator,420,07:00,19:00,华东电梯维保有限公司,true
plumber,水电工,plumbing;electrical;general,420,08:30,17:30,,true
fire.eng,消防工程师,fire,420,08:30,17:30,,true
"""


def register_demo(db: StateDatabase) -> None:
    """The demo estate's device registry (docs/examples/inventory.yaml)."""
    RegistryStore(db).apply(load_inventory(EXAMPLES / "inventory.yaml"), T0)


def seed(db: StateDatabase, *, with_roster: bool = True) -> None:
    """Registry, the example ledger and (optionally) a small roster."""
    register_demo(db)
    ledger.import_csv(db, LEDGER_CSV.read_text(encoding="utf-8"), "equipment.csv", T0, actor="test")
    if with_roster:
        with db.session() as session:
            roster.apply(session, roster.parse_csv(ROSTER, "roster.csv"), "roster.csv", T0, actor="test")


def raise_vibration(db: StateDatabase, clock: FakeClock, device: str, site: str = "demo") -> None:
    """Raise `pump.vibration_high` on a pump through the alarm service with the maintenance stage."""
    pump = DeviceRef(site, Family.PUMP, device)
    readings = [Reading(pump, clock.now() + timedelta(seconds=s), {"vibration_mm_s": 3.6}) for s in (0, 60, 120, 180)]
    service = AlarmService(db, clock, lambda _e: None, lambda _s: ("plant", "pump-room"), stages=[MaintenanceStage()])
    service.apply(RuleEngine([rule_by_id("pump.vibration_high")]).process(readings))
