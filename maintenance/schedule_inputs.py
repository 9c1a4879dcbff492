"""What the scheduler works on, read from the state database: jobs, technicians, the time zone.

Three sources become `maintenance.schedule.Job`s:
- **open work orders** (any kind): they keep their assignee, priority and due date;
- **due plan tasks** without a work order yet (periods overlapping the schedule's days);
- **predicted risks**: the latest risk of each piece of equipment at or above `threshold`
  becomes a predictive inspection, unless the equipment already has an open corrective or
  predictive work order (which carries that risk instead).
Every job carries its equipment's latest failure risk, which orders it among equal priorities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from maintenance import plans
from maintenance.catalog import EQUIPMENT_TYPES, INTERVALS, PLANNED_STATUSES, PRIORITIES
from maintenance.risks import latest_risks
from maintenance.schedule import Crew, Job
from maintenance.workorders import HIGH_RISK, OPEN_STATUSES
from storage.state.equipment_models import Equipment, EquipmentRisk, PlanTask, Technician, WorkOrder
from storage.state.models import Site

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Inputs:
    jobs: tuple[Job, ...]
    crews: tuple[Crew, ...]
    tz: tzinfo


def load(session: Session, now: datetime, *, days: int, threshold: float = DEFAULT_THRESHOLD,
         site: str | None = None) -> Inputs:
    """Jobs and technicians for a schedule of `days` days from today in the site's time zone."""
    tz = _zone(session, site)
    today = now.astimezone(tz).date()
    last = today + timedelta(days=days - 1)
    query = select(Equipment).order_by(Equipment.id)
    if site is not None:
        query = query.where(Equipment.site == site)
    equipment = {e.id: e for e in session.scalars(query)}
    risks = latest_risks(session, list(equipment))
    orders = _open_orders(session, list(equipment))
    tasks = {t.id: t for t in session.scalars(select(PlanTask))}
    jobs = [_order_job(o, equipment[o.equipment_id], risks.get(o.equipment_id), tasks, tz) for o in orders]
    jobs += _plan_jobs(session, list(equipment.values()), risks, today, last)
    busy = {o.equipment_id for o in orders if o.kind != "planned"}
    jobs += [_risk_job(equipment[code], risk, tz) for code, risk in sorted(risks.items())
             if risk.probability >= threshold and code not in busy and equipment[code].status in PLANNED_STATUSES]
    return Inputs(tuple(jobs), crews(session), tz)


def crews(session: Session) -> tuple[Crew, ...]:
    query = select(Technician).where(Technician.active.is_(True)).order_by(Technician.id)
    return tuple(Crew(t.id, frozenset(t.skills), t.daily_capacity_min, t.shift_start, t.shift_end, t.name)
                 for t in session.scalars(query))


def _zone(session: Session, site: str | None) -> tzinfo:
    if site is not None:
        return plans.site_zone(session, site)
    first = session.scalar(select(Site.timezone).join(Equipment, Equipment.site == Site.id).limit(1))
    return ZoneInfo(first or plans.DEFAULT_TZ)


def _open_orders(session: Session, codes: Sequence[str]) -> list[WorkOrder]:
    query = select(WorkOrder).where(WorkOrder.status.in_(OPEN_STATUSES), WorkOrder.equipment_id.in_(codes))
    return list(session.scalars(query.order_by(WorkOrder.id)))


def _local_day(when: datetime | None, tz: tzinfo) -> date | None:
    """The local day something due at `when` is due on (midnight counts as the day before)."""
    return None if when is None else (when - timedelta(microseconds=1)).astimezone(tz).date()


def _titles(title: str) -> tuple[str, str]:
    zh, sep, en = title.partition(" / ")
    return (zh, en) if sep else (title, title)


def _order_job(order: WorkOrder, item: Equipment, risk: EquipmentRisk | None, tasks: dict[int, PlanTask],
               tz: tzinfo) -> Job:
    task = tasks.get(order.plan_task_id) if order.plan_task_id is not None else None
    zh, en = _titles(order.title)
    due = _local_day(order.due_at, tz)
    kind_zh = {"planned": "计划保养", "corrective": "报修", "predictive": "预测性检查"}.get(order.kind, order.kind)
    basis_en = f"{order.kind} work order #{order.id} ({order.priority})" + (f", due {due}" if due else "")
    basis_zh = f"{kind_zh}工单 #{order.id}(优先级{PRIORITIES.get(order.priority, ('', ''))[0]})" + \
        (f",{due} 前完成" if due else "")
    if order.status == "in_progress":
        basis_en, basis_zh = basis_en + ", in progress", basis_zh + ",进行中"
    probability = 0.0 if risk is None else risk.probability
    if probability > 0:
        basis_en, basis_zh = basis_en + f"; failure risk {probability:.0%}", basis_zh + f";故障风险 {probability:.0%}"
    return Job(f"wo:{order.id}", order.kind, item.id, item.type, zh, en, order.skill, order.estimate_min,
               order.priority, probability, due, order.period_start, task.blackout_sensitive if task else True,
               order.id, order.assignee, order.status == "in_progress", basis_en, basis_zh)


def _plan_jobs(session: Session, equipment: Sequence[Equipment], risks: dict[str, EquipmentRisk], first: date,
               last: date) -> list[Job]:
    tasks = plans.tasks_by_equipment(session, equipment)
    due = plans.due_tasks(equipment, tasks, first, last)
    done = plans.existing_keys(session, due)
    return [_plan_job(d, risks.get(d.equipment.id)) for d in due if d.key not in done]


def _plan_job(due: plans.DueTask, risk: EquipmentRisk | None) -> Job:
    task, item = due.task, due.equipment
    interval_zh, interval_en = INTERVALS.get(task.interval, (task.interval, task.interval))
    probability = 0.0 if risk is None else risk.probability
    cite = task.source.split(";")[0].split(" (")[0].strip()
    basis_en = f"{interval_en} plan task, due {due.period.end}" + (f" ({cite})" if cite else "")
    basis_zh = f"{interval_zh}计划保养,{due.period.end} 前完成" + (f"({cite})" if cite else "")
    if probability > 0:
        basis_en, basis_zh = basis_en + f"; failure risk {probability:.0%}", basis_zh + f";故障风险 {probability:.0%}"
    return Job(f"plan:{item.id}:{task.id}:{due.period.start}", "planned", item.id, item.type, task.title_zh,
               task.title_en, task.skill, task.duration_min, "normal", probability, due.period.end, due.period.start,
               task.blackout_sensitive, basis_en=basis_en, basis_zh=basis_zh)


def _risk_job(item: Equipment, risk: EquipmentRisk, tz: tzinfo) -> Job:
    kind = EQUIPMENT_TYPES.get(item.type, EQUIPMENT_TYPES["other"])
    features = ", ".join(str(name) for name, *_ in risk.top_features[:3])
    due = risk.scored_at.astimezone(tz).date() + timedelta(days=risk.horizon_days)
    basis_en = f"predicted failure risk {risk.probability:.0%} within {risk.horizon_days} days"
    basis_zh = f"预测 {risk.horizon_days} 天内故障风险 {risk.probability:.0%}"
    if features:
        basis_en, basis_zh = basis_en + f" (top: {features})", basis_zh + f"(主要因素:{features})"
    return Job(f"risk:{item.id}:{risk.id}", "predictive", item.id, item.type, f"预测性检查:{item.name_zh or item.id}",
               f"Predictive inspection: {item.name_en or item.id}", kind.skill, kind.inspect_min,
               "high" if risk.probability >= HIGH_RISK else "normal", risk.probability, due,
               basis_en=f"{basis_en}; model {risk.model_version}", basis_zh=basis_zh)
