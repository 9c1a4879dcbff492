"""Read models of the equipment ledger: equipment with its health, for the API and the console.

Health is what an engineer scans a list for: the latest failure risk, how many work orders are
open, and the next planned task (the earliest due period whose work order is not closed).
Queries are batched per list, not per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maintenance import plans
from maintenance.catalog import EQUIPMENT_STATUSES, EQUIPMENT_TYPES
from maintenance.risks import latest_risks, risk_view
from maintenance.workorders import OPEN_STATUSES
from storage.state.equipment_models import Equipment, EquipmentDevice, WorkOrder
from storage.state.models import Device


def linked_devices(session: Session, codes: Sequence[str]) -> dict[str, list[str]]:
    """Device keys (site/family/device_id) of each equipment: ledger links and inventory `equipment_id`."""
    found: dict[str, set[str]] = {}
    ledger = select(EquipmentDevice.equipment_id, EquipmentDevice.site, EquipmentDevice.family,
                    EquipmentDevice.device_id).where(EquipmentDevice.equipment_id.in_(codes))
    named = select(Device.equipment_id, Device.site, Device.family, Device.device_id).where(
        Device.equipment_id.in_(codes))
    for query in (ledger, named):
        for code, site, family, device in session.execute(query).tuples():
            if code is not None:
                found.setdefault(code, set()).add(f"{site}/{family}/{device}")
    return {code: sorted(keys) for code, keys in found.items()}


def equipment_views(session: Session, rows: Sequence[Equipment], now: datetime) -> list[dict[str, Any]]:
    """The public JSON shape of each piece of equipment, with its devices and health."""
    codes = [row.id for row in rows]
    devices = linked_devices(session, codes)
    risks = latest_risks(session, codes)
    counts = dict(iter(session.execute(
        select(WorkOrder.equipment_id, func.count()).where(
            WorkOrder.equipment_id.in_(codes), WorkOrder.status.in_(OPEN_STATUSES)).group_by(WorkOrder.equipment_id)
    ).tuples()))
    upcoming = plans.next_due(session, rows, now)
    return [{**equipment_view(row), "devices": devices.get(row.id, []), "health": {
        "risk": risk_view(risks.get(row.id)), "open_work_orders": counts.get(row.id, 0),
        "next_task": _next_task(upcoming.get(row.id)),
    }} for row in rows]


def equipment_view(row: Equipment) -> dict[str, Any]:
    kind = EQUIPMENT_TYPES.get(row.type)
    status = EQUIPMENT_STATUSES.get(row.status, (row.status, row.status))
    return {
        "id": row.id, "site": row.site, "type": row.type, "type_zh": kind.name_zh if kind else row.type,
        "type_en": kind.name_en if kind else row.type, "name_zh": row.name_zh, "name_en": row.name_en,
        "model": row.model, "manufacturer": row.manufacturer, "building": row.building_id, "floor": row.floor,
        "zone": row.zone_id, "installed_on": _day(row.installed_on), "warranty_until": _day(row.warranty_until),
        "contractor": row.contractor, "status": row.status, "status_zh": status[0], "status_en": status[1],
        "metrics": row.metrics, "notes": row.notes,
    }


def _next_task(due: plans.DueTask | None) -> dict[str, Any] | None:
    if due is None:
        return None
    return {"task_id": due.task.id, "title_zh": due.task.title_zh, "title_en": due.task.title_en,
            "interval": due.task.interval, "period_start": due.period.start.isoformat(),
            "due": due.period.end.isoformat()}


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()
