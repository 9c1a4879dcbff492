"""The history of fmon's own equipment, in the bring-your-own-history frames.

The same feature code runs on CSV files and on fmon's data: the assets are the ledger's equipment
(type from the ledger), the telemetry is what their linked devices stored, and the events come
from the state database: a corrective work order is a failure at the time it was opened, a done
planned or predictive work order is a maintenance at its completion, and the equipment's own
alarms (category `equipment`) are errors.

Not for: training or scoring (maintenance.training, maintenance.predict), or timers (runtime).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.domain import DeviceRef, Family
from maintenance import workorders
from maintenance.history import (
    EventRecord,
    ReadingSource,
    events_frame,
    normalize_assets,
    telemetry_from_store,
)
from storage.state.equipment_models import Equipment, EquipmentDevice, WorkOrder
from storage.state.models import Alarm, Device

ERROR_CATEGORIES = ("equipment",)


@dataclass(frozen=True)
class FleetHistory:
    telemetry: pd.DataFrame
    events: pd.DataFrame
    assets: pd.DataFrame

    @property
    def failures(self) -> int:
        return int((self.events["kind"] == "failure").sum()) if len(self.events) else 0


def device_links(session: Session) -> dict[DeviceRef, str]:
    """Device → equipment code, from the ledger's links and the registry's `equipment_id`."""
    links: dict[DeviceRef, str] = {}
    for site, family, device_id, code in session.execute(
            select(Device.site, Device.family, Device.device_id, Device.equipment_id)
            .where(Device.equipment_id.is_not(None))):
        links[DeviceRef(site, Family(family), device_id)] = code
    for link in session.scalars(select(EquipmentDevice)):  # the ledger wins over the inventory
        links[DeviceRef(link.site, Family(link.family), link.device_id)] = link.equipment_id
    known = set(session.scalars(select(Equipment.id)))
    return {device: code for device, code in links.items() if code in known}


def fleet_events(session: Session, links: dict[DeviceRef, str], since: datetime) -> pd.DataFrame:
    """Failures, maintenance and errors of the ledger's equipment since `since`."""
    records: list[EventRecord] = []
    failure = workorders.is_failure()
    query = select(WorkOrder, failure.label("failure")).where(WorkOrder.created_at >= since)
    for order, is_failure in session.execute(query):
        if is_failure:
            records.append(EventRecord(order.created_at, order.equipment_id, "failure", order.skill))
        elif order.status == "done" and order.completed_at is not None:
            records.append(EventRecord(order.completed_at, order.equipment_id, "maintenance", order.kind))
    alarms = session.scalars(select(Alarm).where(Alarm.raised_at >= since, Alarm.category.in_(ERROR_CATEGORIES)))
    for alarm in alarms:
        code = links.get(DeviceRef(alarm.site, Family(alarm.family), alarm.device_id))
        if code is not None:
            records.append(EventRecord(alarm.raised_at, code, "error", alarm.rule_id))
    return events_frame(records)


def fleet_assets(session: Session, codes: Iterable[str]) -> pd.DataFrame:
    wanted = set(codes)
    rows = [(e.id, e.type) for e in session.scalars(select(Equipment).order_by(Equipment.id)) if e.id in wanted]
    return normalize_assets(pd.DataFrame(rows, columns=["asset_id", "type"]))


def fleet_history(session: Session, store: ReadingSource, start: datetime, end: datetime) -> FleetHistory:
    """The ledger's equipment between `start` and `end`: telemetry of the linked devices, events, types."""
    links = device_links(session)
    telemetry = telemetry_from_store(store, start, end, devices=set(links), asset_of=links.get)
    return FleetHistory(telemetry, fleet_events(session, links, start), fleet_assets(session, set(links.values())))
