"""The backfill's maintenance and failure log, recorded in the state database as work orders.

What the equipment-health jobs learn from is the ledger's history of work orders
(`maintenance.fleet`): a corrective work order is a failure at the time it was opened, a done
planned one is a maintenance at its completion. So each simulated failure becomes a corrective
work order opened at the failure and completed at the repair (still open if the history ends
before the repair), and each simulated maintenance a done planned work order.

A device is matched to its equipment through the ledger's links or the registry
(`equipment_of_device`); entries of devices that belong to no equipment are counted and left
out. On the demo site an empty ledger is first seeded with the demo's (as `fmon demo` does).
Recording the same history again adds nothing: a work order the backfill already wrote (same
equipment, kind and opening time) is skipped. One audit entry per run says what was written.

Not for: work done by people (`maintenance.workorders`), or planned work to come (`maintenance.plans`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import FmonError
from maintenance.catalog import EQUIPMENT_TYPES
from simulators.backfill import HistoryPlan, LogEntry
from storage.state.database import StateDatabase
from storage.state.equipment_models import Equipment, WorkOrder, equipment_of_device
from storage.state.models import AuditEntry

log = logging.getLogger(__name__)
ACTOR = "backfill"
DEMO_SITE = "demo"
_Key = tuple[str, str, datetime]  # (equipment, kind, created_at): what makes a backfilled work order the same


@dataclass(frozen=True, slots=True)
class LedgerReport:
    """What the log became: work orders written, skipped as already there, entries without equipment."""

    failures: int = 0
    maintenance: int = 0
    existing: int = 0
    unmatched: tuple[str, ...] = ()  # devices (family/id) that belong to no equipment of the ledger
    seeded: bool = False  # the demo ledger was imported first

    def summary(self) -> str:
        text = (f"{self.failures} corrective work orders (failures), {self.maintenance} done planned work orders "
                f"(maintenance)")
        if self.existing:
            text += f", {self.existing} already recorded"
        if self.unmatched:
            text += f"; not in the equipment ledger, left out: {', '.join(self.unmatched)}"
        return text


def record_log(db: StateDatabase, plan: HistoryPlan) -> LedgerReport:
    """Write the work orders of `plan.log` (see the module docstring) in one transaction."""
    site = plan.log[0].site if plan.log else ""
    seeded = site == DEMO_SITE and _seed_demo_ledger(db, plan.start)
    with db.session() as session:
        known = _backfilled(session)
        orders, unmatched = _orders(session, plan.log)
        new = [order for order in orders if _key(order) not in known]
        session.add_all(new)
        session.flush()
        report = LedgerReport(sum(o.kind == "corrective" for o in new), sum(o.kind == "planned" for o in new),
                              len(orders) - len(new), tuple(sorted(unmatched)), seeded)
        if new:
            session.add(AuditEntry(at=plan.end, actor=ACTOR, action="backfill.record", entity_type="work_order",
                                   entity_id=site[:64], reason="simulated history (fmon simulate backfill)",
                                   detail={"failures": report.failures, "maintenance": report.maintenance,
                                           "from": plan.start.isoformat(), "to": plan.end.isoformat()}))
    return report


def _seed_demo_ledger(db: StateDatabase, now: datetime) -> bool:
    """The demo's registry, ledger and roster, when the ledger is empty; False if nothing was seeded."""
    from runtime.demo import seed_demo_data  # the demo wiring loads the API: only when needed

    with db.session() as session:
        if session.scalar(select(func.count()).select_from(Equipment)):
            return False
    try:
        seed_demo_data(db, now)
    except FmonError as exc:  # e.g. a registry of another estate under the same site id
        log.warning("the demo equipment ledger could not be seeded: %s", exc)
        return False
    return True


def _backfilled(session: Session) -> set[_Key]:
    rows = session.execute(select(WorkOrder.equipment_id, WorkOrder.kind, WorkOrder.created_at)
                           .where(WorkOrder.created_by == ACTOR))
    return {(code, kind, created) for code, kind, created in rows.tuples()}


def _key(order: WorkOrder) -> _Key:
    return order.equipment_id, order.kind, order.created_at


def _orders(session: Session, entries: Iterable[LogEntry]) -> tuple[list[WorkOrder], set[str]]:
    orders: list[WorkOrder] = []
    unmatched: set[str] = set()
    for entry in entries:
        if entry.kind not in ("failure", "maintenance"):
            continue  # wear beginning is nobody's record; a repair completes its failure's work order
        codes = equipment_of_device(session, entry.site, entry.family.value, entry.device_id)
        item = session.get(Equipment, codes[0]) if codes else None
        if item is None:
            unmatched.add(f"{entry.family.value}/{entry.device_id}")
            continue
        orders.append(_failure(item, entry) if entry.kind == "failure" else _maintenance(item, entry))
    return orders, unmatched


def _failure(item: Equipment, entry: LogEntry) -> WorkOrder:
    """A corrective work order (报修) opened at the failure, done at the repair."""
    repaired = entry.until
    notes = "" if repaired is None else "修复后恢复运行 / repaired and returned to service"
    return _order(item, entry, "corrective", priority="high",
                  title=f"故障停机(模拟历史) / Breakdown (simulated history): {entry.detail}",
                  done_at=repaired, notes=notes)


def _maintenance(item: Equipment, entry: LogEntry) -> WorkOrder:
    """A planned work order done at the time of the simulated maintenance."""
    return _order(item, entry, "planned", priority="normal", title=f"保养(模拟历史) / Maintenance (simulated "
                  f"history): {entry.detail}", done_at=entry.until or entry.ts, notes="")


def _order(item: Equipment, entry: LogEntry, kind: str, *, priority: str, title: str, done_at: datetime | None,
           notes: str) -> WorkOrder:
    kind_of = EQUIPMENT_TYPES.get(item.type, EQUIPMENT_TYPES["other"])
    minutes = None if done_at is None else round((done_at - entry.ts).total_seconds() / 60)
    return WorkOrder(
        kind=kind, equipment_id=item.id, site=item.site, title=title[:300], description=f"{entry.device_id}: "
        f"{entry.detail}", checklist=[], status="open" if done_at is None else "done", priority=priority,
        skill=kind_of.skill, estimate_min=kind_of.inspect_min, parts=[], notes=notes, maintenance_mode=False,
        minutes_spent=None if kind == "corrective" else minutes, created_by=ACTOR, created_at=entry.ts,
        updated_at=done_at or entry.ts, started_at=entry.ts if done_at else None, completed_at=done_at)
