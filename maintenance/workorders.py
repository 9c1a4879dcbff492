"""Work orders (工单): create, assign, start, hold, complete, cancel; every action audited.

States and the actions between them (anything else is refused with `WorkOrderRefused`, a 409):

    open ──assign──► assigned ──start──► in_progress ──complete──► done
      ▲                 ▲  │                │   ▲
      └─(assign again)──┘  └──hold──► on_hold ──start (resume)
    open, assigned, in_progress, on_hold ──cancel──► cancelled

Maintenance mode: a work order with `maintenance_mode` opens a maintenance window on its
equipment (`alarms.maintenance.start`, target kind `equipment`) when work starts, so alarms of
the devices that monitor it are suppressed by design while it is worked on; completing or
cancelling it ends the window (the alarms still active are shown again). A window is bounded
(`maintenance_hours`, default 8 h): work that runs longer shows its alarms again, and resuming a
held order opens a new window if the old one ran out.

Bad input (unknown equipment or technician, a missing reason) is `InvalidRequest` (422); a
missing work order is `NotFound` (404). Not for: plan generation (`maintenance.plans`) or the
schedule (`maintenance.schedule`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from alarms import maintenance
from alarms.lifecycle import InvalidRequest, TransitionRefused
from core.errors import NotFound
from maintenance.catalog import EQUIPMENT_TYPES, PRIORITIES, SKILLS
from storage.state.equipment_models import Equipment, EquipmentRisk, Technician, WorkOrder
from storage.state.models import AuditEntry, Maintenance

KINDS = ("planned", "corrective", "predictive")
STATUSES = ("open", "assigned", "in_progress", "on_hold", "done", "cancelled")
OPEN_STATUSES = ("open", "assigned", "in_progress", "on_hold")
AUDIT_ENTITY = "work_order"
ESTIMATE_RANGE = (5, 24 * 60)  # minutes; longer jobs are split into several work orders
MINUTES_MAX = 14 * 24 * 60
MAINTENANCE_HOURS = (1, 30 * 24)
PARTS_MAX = 100
HIGH_RISK = 0.8  # a predictive work order from a risk at least this likely is `high` priority

# action: (the states it may start from, the state it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "assign": (("open", "assigned", "on_hold"), "assigned"),
    "start": (("assigned", "on_hold"), "in_progress"),
    "hold": (("assigned", "in_progress"), "on_hold"),
    "complete": (("in_progress",), "done"),
    "cancel": (OPEN_STATUSES, "cancelled"),
}


class WorkOrderRefused(TransitionRefused):
    """The work order's state does not allow this action now."""


@dataclass(frozen=True, slots=True)
class NewWorkOrder:
    """What a person asks for when creating a work order (planned ones come from `plans.generate`)."""

    equipment_id: str
    kind: str = "corrective"
    title: str = ""
    description: str = ""
    priority: str | None = None  # default: normal; predictive from its risk
    due_at: datetime | None = None
    assignee: str | None = None
    estimate_min: int | None = None  # default: the equipment type's inspection time
    skill: str | None = None  # default: the equipment type's skill
    maintenance_mode: bool = False
    risk_id: int | None = None  # predictive: the prediction it answers


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    qty: float
    unit: str = ""
    code: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A work order after an action, and the alarms shown again if it ended maintenance mode."""

    order: WorkOrder
    released: tuple[int, ...] = ()


def get(session: Session, order_id: int) -> WorkOrder:
    order = session.get(WorkOrder, order_id)
    if order is None:
        raise NotFound(f"no work order {order_id}")
    return order


def create(session: Session, new: NewWorkOrder, actor: str, now: datetime) -> WorkOrder:
    """Create a corrective or predictive work order (open, or assigned if an assignee is given)."""
    item = _equipment(session, new.equipment_id)
    if new.kind not in ("corrective", "predictive"):
        raise InvalidRequest(f"kind {new.kind!r}: create corrective or predictive work orders; planned ones "
                             "are generated from maintenance plans")
    risk = _risk(session, new.risk_id, item.id)
    kind = EQUIPMENT_TYPES[item.type] if item.type in EQUIPMENT_TYPES else EQUIPMENT_TYPES["other"]
    if new.skill is not None and new.skill not in SKILLS:
        raise InvalidRequest(f"skill: {new.skill!r} is not one of {', '.join(SKILLS)}")
    order = WorkOrder(
        kind=new.kind, equipment_id=item.id, site=item.site, title=_title(new, risk), description=new.description,
        checklist=[], status="open", priority=_priority(new, risk), skill=new.skill or kind.skill,
        estimate_min=_estimate(new.estimate_min, kind.inspect_min), due_at=_aware(new.due_at, "due_at"),
        risk_id=None if risk is None else risk.id, parts=[], notes="", maintenance_mode=new.maintenance_mode,
        created_by=actor[:64], created_at=now, updated_at=now)
    if new.assignee is not None:
        order.assignee, order.status = _technician(session, new.assignee, order.skill).id, "assigned"
    session.add(order)
    session.flush()
    _audit(session, order, "create", actor, now, "", {"kind": order.kind, "equipment": item.id,
                                                       "status": order.status, "assignee": order.assignee})
    return order


def assign(session: Session, order_id: int, assignee: str, actor: str, now: datetime, *, reason: str = "",
           version: int | None = None) -> Outcome:
    order = _transition(session, order_id, "assign", version)
    order.assignee, order.hold_reason = _technician(session, assignee, order.skill).id, None
    return _done(session, order, "assign", actor, now, reason, {"assignee": order.assignee})


def start(session: Session, order_id: int, actor: str, now: datetime, *, maintenance_hours: float = 8,
          version: int | None = None) -> Outcome:
    """Start (or resume) work; opens maintenance mode if the order asks for it."""
    order = _transition(session, order_id, "start", version)
    if not MAINTENANCE_HOURS[0] <= maintenance_hours <= MAINTENANCE_HOURS[1]:
        raise InvalidRequest(f"maintenance_hours must be within {MAINTENANCE_HOURS[0]}..{MAINTENANCE_HOURS[1]}")
    resumed = order.status == "on_hold" and order.started_at is not None
    order.started_at = order.started_at or now
    order.hold_reason = None
    if order.maintenance_mode and not _window_open(session, order, now):
        until = now + timedelta(hours=maintenance_hours)
        window = maintenance.start(session, order.site, "equipment", order.equipment_id,
                                   f"work order #{order.id}: {order.title}", until, actor, now)
        order.maintenance_id = window.id
    return _done(session, order, "resume" if resumed else "start", actor, now, "",
                 {"maintenance_id": order.maintenance_id})


def hold(session: Session, order_id: int, reason: str, actor: str, now: datetime, *,
         version: int | None = None) -> Outcome:
    """Put work on hold (waiting for parts, access…); maintenance mode stays on."""
    _reason(reason)
    order = _transition(session, order_id, "hold", version)
    order.hold_reason = reason
    return _done(session, order, "hold", actor, now, reason, {})


def complete(session: Session, order_id: int, actor: str, now: datetime, *, minutes_spent: int,
             parts: Sequence[Part] = (), notes: str = "", version: int | None = None) -> Outcome:
    """Finish the work: time spent, parts used, notes; ends maintenance mode."""
    if not 0 <= minutes_spent <= MINUTES_MAX:
        raise InvalidRequest(f"minutes_spent must be within 0..{MINUTES_MAX}")
    checked = [_part(p, i) for i, p in enumerate(parts)]
    if len(checked) > PARTS_MAX:
        raise InvalidRequest(f"at most {PARTS_MAX} parts")
    order = _transition(session, order_id, "complete", version)
    order.minutes_spent, order.parts, order.completed_at = minutes_spent, checked, now
    order.notes = notes
    released = _end_window(session, order, actor, now, "work order done")
    outcome = _done(session, order, "complete", actor, now, notes,
                    {"minutes_spent": minutes_spent, "parts": checked})
    return Outcome(outcome.order, released)


def cancel(session: Session, order_id: int, reason: str, actor: str, now: datetime, *,
           version: int | None = None) -> Outcome:
    _reason(reason)
    order = _transition(session, order_id, "cancel", version)
    order.cancelled_at = now
    released = _end_window(session, order, actor, now, "work order cancelled")
    outcome = _done(session, order, "cancel", actor, now, reason, {})
    return Outcome(outcome.order, released)


ACTIONS = ("assign", "start", "hold", "complete", "cancel")


# --- helpers -------------------------------------------------------------------------------------


def _transition(session: Session, order_id: int, action: str, version: int | None) -> WorkOrder:
    order = get(session, order_id)
    if version is not None and version != order.version:
        raise WorkOrderRefused(f"work order {order_id} changed (version {order.version}, you saw {version}): "
                               "reload and retry")
    allowed, _ = TRANSITIONS[action]
    if order.status not in allowed:
        raise WorkOrderRefused(f"cannot {action} work order {order_id}: it is {order.status} "
                               f"({action} needs {' or '.join(allowed)})")
    return order


def _done(session: Session, order: WorkOrder, action: str, actor: str, now: datetime, reason: str,
          detail: dict[str, Any]) -> Outcome:
    before = order.status
    order.status = TRANSITIONS["start" if action == "resume" else action][1]
    order.updated_at = now
    session.flush()
    _audit(session, order, action, actor, now, reason, {"from": before, "to": order.status, **detail})
    return Outcome(order)


def _audit(session: Session, order: WorkOrder, action: str, actor: str, now: datetime, reason: str,
           detail: dict[str, Any]) -> None:
    session.add(AuditEntry(at=now, actor=actor[:64], action=f"work_order.{action}", entity_type=AUDIT_ENTITY,
                           entity_id=str(order.id), reason=reason, detail=detail))


def _equipment(session: Session, code: str) -> Equipment:
    item = session.get(Equipment, code)
    if item is None:
        raise InvalidRequest(f"equipment_id: no equipment {code!r} in the ledger")
    return item


def _risk(session: Session, risk_id: int | None, code: str) -> EquipmentRisk | None:
    if risk_id is None:
        return None
    risk = session.get(EquipmentRisk, risk_id)
    if risk is None or risk.equipment_id != code:
        raise InvalidRequest(f"risk_id: no prediction {risk_id} for equipment {code}")
    return risk


def _technician(session: Session, assignee: str, skill: str) -> Technician:
    tech = session.get(Technician, assignee)
    if tech is None or not tech.active:
        raise InvalidRequest(f"assignee: {assignee!r} is not an active technician of the roster")
    if skill not in tech.skills:
        raise InvalidRequest(f"assignee: {assignee} lacks skill {skill!r} (has {', '.join(tech.skills) or 'none'})")
    return tech


def _title(new: NewWorkOrder, risk: EquipmentRisk | None) -> str:
    title = new.title.strip()
    if not title and new.kind == "predictive" and risk is not None:
        title = (f"预测性检查:{risk.horizon_days}天内故障风险 {risk.probability:.0%} / Predictive inspection: "
                 f"{risk.probability:.0%} failure risk within {risk.horizon_days} days")
    if not title:
        raise InvalidRequest("title: a title is required")
    if len(title) > 300:
        raise InvalidRequest("title: at most 300 characters")
    return title


def _priority(new: NewWorkOrder, risk: EquipmentRisk | None) -> str:
    if new.priority is not None:
        if new.priority not in PRIORITIES:
            raise InvalidRequest(f"priority: {new.priority!r} is not one of {', '.join(PRIORITIES)}")
        return new.priority
    return "high" if risk is not None and risk.probability >= HIGH_RISK else "normal"


def _estimate(minutes: int | None, default: int) -> int:
    if minutes is None:
        return default
    if not ESTIMATE_RANGE[0] <= minutes <= ESTIMATE_RANGE[1]:
        raise InvalidRequest(f"estimate_min must be within {ESTIMATE_RANGE[0]}..{ESTIMATE_RANGE[1]} minutes")
    return minutes


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidRequest(f"{name}: give a time zone offset, e.g. 2026-11-28T18:00:00+08:00")
    return value


def _reason(reason: str) -> None:
    if not reason.strip():
        raise InvalidRequest("reason: a reason is required")


def _part(part: Part, index: int) -> dict[str, Any]:
    if not part.name.strip() or len(part.name) > 128:
        raise InvalidRequest(f"parts[{index}].name: 1-128 characters")
    if not 0 < part.qty <= 10_000:
        raise InvalidRequest(f"parts[{index}].qty: must be more than 0 (at most 10000)")
    return {"name": part.name.strip(), "qty": part.qty, "unit": part.unit, "code": part.code}


def _window_open(session: Session, order: WorkOrder, now: datetime) -> bool:
    if order.maintenance_id is None:
        return False
    window = session.get(Maintenance, order.maintenance_id)
    return window is not None and window.ended_at is None and window.until > now


def _end_window(session: Session, order: WorkOrder, actor: str, now: datetime, reason: str) -> tuple[int, ...]:
    if order.maintenance_id is None:
        return ()
    window = session.get(Maintenance, order.maintenance_id)
    if window is None or window.ended_at is not None:
        return ()
    return tuple(alarm.id for alarm in maintenance.end(session, window.id, actor, reason, now))


def view(order: WorkOrder) -> dict[str, Any]:
    """The public JSON shape of a work order."""
    return {
        "id": order.id, "kind": order.kind, "equipment_id": order.equipment_id, "site": order.site,
        "title": order.title, "description": order.description, "checklist": order.checklist,
        "status": order.status, "priority": order.priority, "skill": order.skill,
        "estimate_min": order.estimate_min, "assignee": order.assignee, "due_at": _iso(order.due_at),
        "plan_task_id": order.plan_task_id,
        "period_start": None if order.period_start is None else order.period_start.isoformat(),
        "risk_id": order.risk_id, "parts": order.parts, "minutes_spent": order.minutes_spent, "notes": order.notes,
        "hold_reason": order.hold_reason, "maintenance_mode": order.maintenance_mode,
        "maintenance_id": order.maintenance_id, "created_by": order.created_by, "created_at": _iso(order.created_at),
        "updated_at": _iso(order.updated_at), "started_at": _iso(order.started_at),
        "completed_at": _iso(order.completed_at), "cancelled_at": _iso(order.cancelled_at), "version": order.version,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def is_failure() -> ColumnElement[bool]:
    """A failure in the equipment's history: a corrective work order that was not cancelled."""
    return (WorkOrder.kind == "corrective") & (WorkOrder.status != "cancelled")


def failures_since(session: Session, since: datetime) -> int:
    """How many failures were recorded since `since`."""
    return session.scalar(select(func.count()).select_from(WorkOrder)
                          .where(WorkOrder.created_at >= since, is_failure())) or 0
