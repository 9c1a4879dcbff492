"""ORM models of the equipment ledger: equipment, maintenance plans, work orders, predictions
(issue 8).

Registered on `storage.state.models.Base`; migration 0008 follows these. The behaviour lives in
`maintenance/` (ledger, plans, work orders, schedule); this module only adds the one query the
alarm pipeline needs: which pieces of equipment a device belongs to (`equipment_of_device`).

Natural keys: an equipment's id is its ledger code (设备编号, e.g. ``DT-B1-001``), unique across
the estate, because maintenance windows, work orders and predictions all name it.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    select,
    true,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.state.models import Base, Device


class Equipment(Base):
    """A piece of equipment of the ledger (设备台账): what it is, where, since when, who maintains it."""

    __tablename__ = "equipment"
    __table_args__ = (
        ForeignKeyConstraint(["site"], ["sites.id"]),
        ForeignKeyConstraint(["site", "building_id"], ["buildings.site", "buildings.building_id"]),
        ForeignKeyConstraint(["site", "building_id", "zone_id"], ["zones.site", "zones.building_id", "zones.zone_id"]),
        Index("ix_equipment_site_type", "site", "type"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the ledger code
    site: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))  # maintenance.ledger.EQUIPMENT_TYPES
    name_zh: Mapped[str] = mapped_column(String(128), default="")
    name_en: Mapped[str] = mapped_column(String(128), default="")
    model: Mapped[str] = mapped_column(String(128), default="")
    manufacturer: Mapped[str] = mapped_column(String(128), default="")
    building_id: Mapped[str | None] = mapped_column(String(64))
    floor: Mapped[int | None]
    zone_id: Mapped[str | None] = mapped_column(String(64))
    installed_on: Mapped[date | None]
    warranty_until: Mapped[date | None]
    contractor: Mapped[str] = mapped_column(String(128), default="")  # 维保单位; empty = in-house
    status: Mapped[str] = mapped_column(String(16), default="in_service")
    metrics: Mapped[list[str]] = mapped_column(JSON, default=list)  # the metrics that describe its health
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EquipmentDevice(Base):
    """A registry device that monitors a piece of equipment (a pump and its controller)."""

    __tablename__ = "equipment_devices"
    __table_args__ = (
        ForeignKeyConstraint(["site", "family", "device_id"], ["devices.site", "devices.family", "devices.device_id"]),
        Index("ix_equipment_devices_device", "site", "family", "device_id"),
    )

    equipment_id: Mapped[str] = mapped_column(String(64), ForeignKey("equipment.id", ondelete="CASCADE"),
                                              primary_key=True)
    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class MaintenancePlan(Base):
    """A set of periodic tasks for one equipment type (built-in templates) or one piece of equipment."""

    __tablename__ = "maintenance_plans"
    __table_args__ = (
        CheckConstraint("(equipment_type IS NULL) != (equipment_id IS NULL)", name="ck_maintenance_plans_target"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # "builtin.elevator" or a custom key
    equipment_type: Mapped[str | None] = mapped_column(String(32), index=True)
    equipment_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("equipment.id", ondelete="CASCADE"),
                                                     index=True)
    name_zh: Mapped[str] = mapped_column(String(200), default="")
    name_en: Mapped[str] = mapped_column(String(200), default="")
    builtin: Mapped[bool] = mapped_column(default=False, server_default=false())
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    updated_at: Mapped[datetime]


class PlanTask(Base):
    """One periodic job of a plan: a work order per piece of equipment and due period."""

    __tablename__ = "plan_tasks"
    __table_args__ = (UniqueConstraint("plan_id", "key", name="uq_plan_tasks_plan_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("maintenance_plans.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    title_zh: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    checklist: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)  # [{"zh": …, "en": …}]
    source: Mapped[str] = mapped_column(Text, default="")  # the standard or practice it follows
    interval: Mapped[str] = mapped_column(String(16))  # half_monthly, monthly, quarterly, half_yearly, annual
    skill: Mapped[str] = mapped_column(String(32))
    duration_min: Mapped[int]
    blackout_sensitive: Mapped[bool] = mapped_column(default=False, server_default=false())
    active: Mapped[bool] = mapped_column(default=True, server_default=true())


class EquipmentRisk(Base):
    """A failure-risk prediction for a piece of equipment, as a model scored it."""

    __tablename__ = "equipment_risks"
    __table_args__ = (Index("ix_equipment_risks_latest", "equipment_id", "scored_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    equipment_id: Mapped[str] = mapped_column(String(64), ForeignKey("equipment.id", ondelete="CASCADE"))
    asset_id: Mapped[str] = mapped_column(String(200))  # what the model called it
    horizon_days: Mapped[int]
    probability: Mapped[float]
    top_features: Mapped[list[list[Any]]] = mapped_column(JSON, default=list)  # [[name, contribution], …]
    model_version: Mapped[str] = mapped_column(String(64))
    scored_at: Mapped[datetime]


class WorkOrder(Base):
    """A work order (工单): planned (from a plan task), corrective (报修) or predictive (from a risk)."""

    __tablename__ = "work_orders"
    __table_args__ = (
        # One planned work order per equipment, task and due period: plan generation is idempotent.
        UniqueConstraint("equipment_id", "plan_task_id", "period_start", name="uq_work_orders_planned_period"),
        Index("ix_work_orders_status", "status", "due_at"),
        Index("ix_work_orders_equipment", "equipment_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # planned, corrective, predictive
    equipment_id: Mapped[str] = mapped_column(String(64), ForeignKey("equipment.id"))
    site: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    checklist: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16))  # open, assigned, in_progress, on_hold, done, cancelled
    priority: Mapped[str] = mapped_column(String(8))  # urgent, high, normal, low
    skill: Mapped[str] = mapped_column(String(32))
    estimate_min: Mapped[int]
    assignee: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime | None]
    plan_task_id: Mapped[int | None] = mapped_column(ForeignKey("plan_tasks.id"))
    period_start: Mapped[date | None]  # the due period of a planned work order
    risk_id: Mapped[int | None] = mapped_column(ForeignKey("equipment_risks.id", ondelete="SET NULL"))
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{"name": …, "qty": …}]
    minutes_spent: Mapped[int | None]
    notes: Mapped[str] = mapped_column(Text, default="")
    hold_reason: Mapped[str | None] = mapped_column(Text)
    maintenance_mode: Mapped[bool] = mapped_column(default=False, server_default=false())
    maintenance_id: Mapped[int | None] = mapped_column(ForeignKey("maintenance.id"))  # the window it opened
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy declarative attribute


class Technician(Base):
    """A member of the maintenance roster: skills and how many minutes of work a day."""

    __tablename__ = "technicians"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # matches WorkOrder.assignee
    name: Mapped[str] = mapped_column(String(128), default="")
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    daily_capacity_min: Mapped[int]
    shift_start: Mapped[time]  # local time of the sites it works at
    shift_end: Mapped[time]
    contractor: Mapped[str] = mapped_column(String(128), default="")  # empty = in-house staff
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    updated_at: Mapped[datetime]


def equipment_of_device(session: Session, site: str, family: str, device_id: str) -> list[str]:
    """Codes of the equipment a device belongs to: linked in the ledger, or named by the device
    registry (`devices.equipment_id`, from the inventory)."""
    linked = select(EquipmentDevice.equipment_id).where(
        EquipmentDevice.site == site, EquipmentDevice.family == family, EquipmentDevice.device_id == device_id)
    named = select(Device.equipment_id).where(
        Device.site == site, Device.family == family, Device.device_id == device_id, Device.equipment_id.is_not(None))
    return sorted({code for code in session.scalars(linked.union(named)) if code})
