"""Maintenance plans: the built-in templates in the database, due periods, planned work orders.

A task's due periods are calendar periods in the site's local time: half-monthly is the 1st–15th
and the 16th–end of each month (TSG T5002: at most 15 days apart), monthly is the calendar
month, and quarterly, half-yearly and annual are blocks of 3, 6 and 12 months starting in the
month the equipment was installed (January if the ledger does not say). A task is due by the
last day of its period and may be done any day in it.

`generate()` creates one planned work order per (equipment, task, period) for the periods due
(ending) within a horizon, so work is released `days` ahead of its due date and done any day of
its period from then on. Run it at least daily (the API and `fmon maintenance plans generate`
do; the schedule also shows due tasks that have no work order yet); periods that ended before
a run are not back-filled. The unique key (equipment, task, period start) makes it idempotent, also when
two processes race: a period that already has a work order, whatever its state, gets no other.
Equipment that is out of service or retired gets no planned work.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict
from maintenance.catalog import INTERVALS, PLANNED_STATUSES
from maintenance.plan_templates import BUILTIN_PLANS, PlanTemplate
from storage.state.equipment_models import Equipment, MaintenancePlan, PlanTask, WorkOrder
from storage.state.models import AuditEntry, Site

DEFAULT_TZ = "Asia/Shanghai"
_MONTHS = {"monthly": 1, "quarterly": 3, "half_yearly": 6, "annual": 12}


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A due period: the task may be done any day from `start` to `end` (inclusive), due by `end`."""

    start: date
    end: date


def period_of(interval: str, day: date, anchor_month: int = 1) -> Period:
    """The period of `interval` that contains `day`; multi-month periods start at `anchor_month`."""
    if interval == "half_monthly":
        last = calendar.monthrange(day.year, day.month)[1]
        return Period(day.replace(day=1), day.replace(day=15)) if day.day <= 15 else \
            Period(day.replace(day=16), day.replace(day=last))
    months = _MONTHS.get(interval)
    if months is None:
        raise ValueError(f"unknown interval {interval!r} ({', '.join(INTERVALS)})")
    index = day.year * 12 + day.month - 1
    first = index - (index - (anchor_month - 1)) % months
    start = date(first // 12, first % 12 + 1, 1)
    after = first + months
    return Period(start, date(after // 12, after % 12 + 1, 1) - timedelta(days=1))


def periods(interval: str, first_day: date, last_day: date, anchor_month: int = 1) -> Iterator[Period]:
    """The periods that overlap the days `first_day`..`last_day` (inclusive), in order."""
    period = period_of(interval, first_day, anchor_month)
    while period.start <= last_day:
        yield period
        period = period_of(interval, period.end + timedelta(days=1), anchor_month)


def due_at(period: Period, tz: tzinfo) -> datetime:
    """The instant a period's work is due: the end of its last day, local time."""
    return datetime.combine(period.end + timedelta(days=1), time(0), tz)


def site_zone(session: Session, site: str) -> ZoneInfo:
    name = session.scalar(select(Site.timezone).where(Site.id == site)) or DEFAULT_TZ
    return ZoneInfo(name)


# --- plans in the database -----------------------------------------------------------------------


def install_builtin(session: Session, now: datetime) -> int:
    """Create or update the built-in plans from `plan_templates`; returns how many tasks changed.
    Tasks keep their ids (work orders refer to them); a task dropped from a template is deactivated."""
    changed = 0
    plans = {p.key: p for p in session.scalars(select(MaintenancePlan).where(MaintenancePlan.builtin.is_(True)))}
    for template in BUILTIN_PLANS.values():
        plan = plans.get(template.key)
        if plan is None:
            plan = MaintenancePlan(key=template.key, equipment_type=template.equipment_type, builtin=True,
                                   active=True, updated_at=now)
            session.add(plan)
        plan.name_zh, plan.name_en = template.name_zh, template.name_en
        session.flush()
        changed += _install_tasks(session, plan, template, now)
    return changed


def _install_tasks(session: Session, plan: MaintenancePlan, template: PlanTemplate, now: datetime) -> int:
    existing = {t.key: t for t in session.scalars(select(PlanTask).where(PlanTask.plan_id == plan.id))}
    changed = 0
    for spec in template.tasks:
        wanted: dict[str, Any] = {
            "title_zh": spec.title_zh, "title_en": spec.title_en, "interval": spec.interval, "skill": spec.skill,
            "duration_min": spec.duration_min, "source": spec.source, "blackout_sensitive": spec.blackout_sensitive,
            "checklist": [{"zh": zh, "en": en} for zh, en in spec.checklist], "active": True,
        }
        task = existing.pop(spec.key, None)
        if task is None:
            session.add(PlanTask(plan_id=plan.id, key=spec.key, **wanted))
        elif any(getattr(task, k) != v for k, v in wanted.items()):
            for name, value in wanted.items():
                setattr(task, name, value)
        else:
            continue
        changed += 1
    for dropped in existing.values():
        changed += int(dropped.active)
        dropped.active = False
    if changed:
        plan.updated_at = now
    return changed


def tasks_by_equipment(session: Session, equipment: Sequence[Equipment]) -> dict[str, list[PlanTask]]:
    """The active plan tasks that apply to each piece of equipment: its type's plans and its own."""
    types = {e.type for e in equipment}
    query = (select(MaintenancePlan, PlanTask).join(PlanTask, PlanTask.plan_id == MaintenancePlan.id)
             .where(MaintenancePlan.active.is_(True), PlanTask.active.is_(True),
                    or_(MaintenancePlan.equipment_type.in_(types),
                        MaintenancePlan.equipment_id.in_([e.id for e in equipment])))
             .order_by(PlanTask.id))
    by_type: dict[str, list[PlanTask]] = {}
    by_code: dict[str, list[PlanTask]] = {}
    for plan, task in session.execute(query).tuples():
        if plan.equipment_id is not None:
            by_code.setdefault(plan.equipment_id, []).append(task)
        elif plan.equipment_type is not None:
            by_type.setdefault(plan.equipment_type, []).append(task)
    return {e.id: by_type.get(e.type, []) + by_code.get(e.id, []) for e in equipment}


# --- due tasks and planned work orders -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DueTask:
    """A plan task due on a piece of equipment in one period."""

    equipment: Equipment
    task: PlanTask
    period: Period

    @property
    def key(self) -> tuple[str, int, date]:
        return self.equipment.id, self.task.id, self.period.start


def due_tasks(equipment: Sequence[Equipment], tasks: dict[str, list[PlanTask]], first_day: date,
              last_day: date) -> list[DueTask]:
    """Every (equipment, task, period) due (period ending) on `first_day`..`last_day`; pure."""
    due = []
    for item in equipment:
        if item.status not in PLANNED_STATUSES:
            continue
        anchor = item.installed_on.month if item.installed_on is not None else 1
        for task in tasks.get(item.id, []):
            due += [DueTask(item, task, p) for p in periods(task.interval, first_day, last_day, anchor)
                    if p.end <= last_day]
    return sorted(due, key=lambda d: (d.period.end, d.equipment.id, d.task.id))


def existing_keys(session: Session, due: Sequence[DueTask]) -> set[tuple[str, int, date]]:
    """The (equipment, task, period start) keys among `due` that already have a work order."""
    keys = [d.key for d in due]
    found: set[tuple[str, int, date]] = set()
    for start in range(0, len(keys), 300):
        query = select(WorkOrder.equipment_id, WorkOrder.plan_task_id, WorkOrder.period_start).where(
            tuple_(WorkOrder.equipment_id, WorkOrder.plan_task_id, WorkOrder.period_start).in_(keys[start:start + 300]))
        found |= {(e, t, p) for e, t, p in session.execute(query).tuples() if t is not None and p is not None}
    return found


@dataclass(frozen=True, slots=True)
class GenerateReport:
    created: tuple[int, ...]
    existing: int
    first_day: date
    last_day: date

    def as_dict(self) -> dict[str, Any]:
        return {"created": len(self.created), "work_order_ids": list(self.created), "existing": self.existing,
                "first_day": self.first_day.isoformat(), "last_day": self.last_day.isoformat()}


def generate(session: Session, now: datetime, days: int, *, actor: str = "system",
             site: str | None = None) -> GenerateReport:
    """Create the planned work orders of the periods due within the next `days` days (from today,
    local time); idempotent. Installs the built-in plans first."""
    if not 1 <= days <= 366:
        raise ValueError("days must be within 1..366")
    install_builtin(session, now)
    query = select(Equipment).where(Equipment.status.in_(PLANNED_STATUSES)).order_by(Equipment.id)
    if site is not None:
        query = query.where(Equipment.site == site)
    equipment = list(session.scalars(query))
    tasks = tasks_by_equipment(session, equipment)
    created: list[WorkOrder] = []
    existing = 0
    for site_id in sorted({e.site for e in equipment}):
        tz = site_zone(session, site_id)
        today = now.astimezone(tz).date()
        first, last = today, today + timedelta(days=days - 1)
        due = due_tasks([e for e in equipment if e.site == site_id], tasks, first, last)
        done = existing_keys(session, due)
        existing += len(done)
        created += [_planned(d, tz, actor, now) for d in due if d.key not in done]
    session.add_all(created)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("another process generated planned work orders at the same time: retry") from None
    today = now.astimezone(site_zone(session, site) if site else ZoneInfo(DEFAULT_TZ)).date()
    report = GenerateReport(tuple(w.id for w in created), existing, today, today + timedelta(days=days - 1))
    if created:
        session.add(AuditEntry(at=now, actor=actor[:64], action="plans.generate", entity_type="work_order",
                               entity_id="planned", reason=f"planned work for {days} days", detail=report.as_dict()))
    return report


def _planned(due: DueTask, tz: tzinfo, actor: str, now: datetime) -> WorkOrder:
    task, item = due.task, due.equipment
    return WorkOrder(
        kind="planned", equipment_id=item.id, site=item.site, title=f"{task.title_zh} / {task.title_en}",
        description=task.source, checklist=list(task.checklist), status="open", priority="normal", skill=task.skill,
        estimate_min=task.duration_min, due_at=due_at(due.period, tz), plan_task_id=task.id,
        period_start=due.period.start, parts=[], notes="", maintenance_mode=task.blackout_sensitive,
        created_by=actor[:64], created_at=now, updated_at=now)


def next_due(session: Session, equipment: Sequence[Equipment], now: datetime) -> dict[str, DueTask]:
    """The next task due on each piece of equipment, skipping periods whose work order is done or
    cancelled: what the equipment list shows as its next planned task."""
    tasks = tasks_by_equipment(session, equipment)
    zones = {site: site_zone(session, site) for site in {e.site for e in equipment}}
    due: list[DueTask] = []
    for item in equipment:
        today = now.astimezone(zones[item.site]).date()
        due += due_tasks([item], tasks, today, today + timedelta(days=366))
    closed = set(session.execute(
        select(WorkOrder.equipment_id, WorkOrder.plan_task_id, WorkOrder.period_start).where(
            WorkOrder.equipment_id.in_([e.id for e in equipment]), WorkOrder.kind == "planned",
            WorkOrder.status.in_(("done", "cancelled")),
            WorkOrder.period_start >= now.date() - timedelta(days=400))).tuples())
    found: dict[str, DueTask] = {}
    for task in sorted(due, key=lambda d: (d.period.end, d.task.id)):
        if task.key not in closed:
            found.setdefault(task.equipment.id, task)
    return found
