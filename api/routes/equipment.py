"""Equipment ledger routes: equipment with health and risk, work orders, the maintenance schedule.

Roles: viewers read everything; engineers import the ledger, generate planned work and act on
work orders; operators (the control room) may also open corrective work orders (报修), because
they are the first to hear of a fault. Thin wiring: the work is in `maintenance/`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from api.deps import Engineer, Operator, Services, Viewer
from core.domain import Role
from core.errors import NotFound
from maintenance import ledger, plans, roster, workorders
from maintenance.overview import equipment_views
from maintenance.plan_templates import BUILTIN_PLANS
from maintenance.risks import risk_view
from maintenance.schedule import DEFAULT_BLACKOUTS, Options, build_schedule, parse_blackout
from maintenance.schedule_inputs import DEFAULT_THRESHOLD, load
from storage.state.equipment_models import Equipment, EquipmentRisk, Technician, WorkOrder
from storage.state.models import AuditEntry

router = APIRouter(tags=["equipment"])
IMPORT_MAX_BYTES = 5 * 1024 * 1024
ID = r"^[A-Za-z0-9_-]{1,64}$"
Status = Literal["open", "assigned", "in_progress", "on_hold", "done", "cancelled"]


# --- equipment -----------------------------------------------------------------------------------


@router.get("/equipment")
def list_equipment(
    services: Services,
    _: Viewer,
    type: str | None = None,  # noqa: A002 - the public query parameter is called "type"
    site: str | None = None,
    building: str | None = None,
    state: Annotated[str | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Equipment with health: latest failure risk, open work orders, next planned task."""
    query = select(Equipment)
    for column, wanted in ((Equipment.type, type), (Equipment.site, site), (Equipment.building_id, building),
                           (Equipment.status, state)):
        if wanted:
            query = query.where(column == wanted)
    with services.db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(session.scalars(query.order_by(Equipment.site, Equipment.id).limit(limit).offset(offset)))
        return {"items": equipment_views(session, rows, services.clock.now()), "total": total}


@router.get("/equipment/export")
def export_equipment(services: Services, _: Viewer, site: str | None = None) -> Response:
    """The ledger as CSV (the format `POST /equipment/import` reads)."""
    with services.db.session() as session:
        text = ledger.export_csv(session, site)
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="equipment.csv"'})


@router.get("/equipment/{equipment_id}")
def get_equipment(equipment_id: str, services: Services, _: Viewer) -> dict[str, Any]:
    """One piece of equipment: health, recent work orders and risks."""
    with services.db.session() as session:
        row = session.get(Equipment, equipment_id)
        if row is None:
            raise NotFound(f"no equipment {equipment_id!r}")
        [view] = equipment_views(session, [row], services.clock.now())
        orders = session.scalars(select(WorkOrder).where(WorkOrder.equipment_id == equipment_id)
                                 .order_by(WorkOrder.id.desc()).limit(50))
        risks = session.scalars(select(EquipmentRisk).where(EquipmentRisk.equipment_id == equipment_id)
                                .order_by(EquipmentRisk.scored_at.desc(), EquipmentRisk.id.desc()).limit(30))
        return {**view, "work_orders": [workorders.view(o) for o in orders],
                "risks": [risk_view(r) for r in risks]}


@router.post("/equipment/import")
def import_equipment(
    body: Annotated[bytes, Body(media_type="text/csv", description="the ledger CSV (docs/equipment-health.md)")],
    services: Services,
    principal: Engineer,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Import a ledger CSV: validated as a whole (422 listing every problem by line), then upserted."""
    if not body.strip():
        raise HTTPException(422, "empty body: send the ledger CSV as text/csv")
    if len(body) > IMPORT_MAX_BYTES:
        raise HTTPException(413, f"at most {IMPORT_MAX_BYTES} bytes")
    try:
        text = ledger.decode(body, "upload.csv")
        report = ledger.import_csv(services.db, text, "upload.csv", services.clock.now(),
                                   actor=principal.username, dry_run=dry_run)
    except ledger.LedgerError as exc:
        problems = [{"line": p.line, "field": p.field, "message": p.message} for p in exc.problems]
        raise HTTPException(422, {"message": str(exc), "problems": problems}) \
            from None
    return report.as_dict()


# --- work orders ---------------------------------------------------------------------------------


class NewWorkOrderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    equipment_id: str = Field(pattern=ID)
    kind: Literal["corrective", "predictive"] = "corrective"
    title: str = Field(default="", max_length=300)
    description: str = Field(default="", max_length=5000)
    priority: Literal["urgent", "high", "normal", "low"] | None = None
    due_at: datetime | None = None
    assignee: str | None = Field(default=None, max_length=64)
    estimate_min: int | None = Field(default=None, ge=workorders.ESTIMATE_RANGE[0], le=workorders.ESTIMATE_RANGE[1])
    skill: str | None = Field(default=None, max_length=32)
    maintenance_mode: bool = False
    risk_id: int | None = None


class VersionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, description="the version you saw; 409 if it changed")


class AssignBody(VersionBody):
    assignee: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=2000)


class StartBody(VersionBody):
    maintenance_hours: float = Field(default=8, ge=workorders.MAINTENANCE_HOURS[0], le=workorders.MAINTENANCE_HOURS[1])


class ReasonBody(VersionBody):
    reason: str = Field(min_length=1, max_length=2000)


class PartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    qty: float = Field(gt=0, le=10_000)
    unit: str = Field(default="", max_length=16)
    code: str = Field(default="", max_length=64)


class CompleteBody(VersionBody):
    minutes_spent: int = Field(ge=0, le=workorders.MINUTES_MAX)
    parts: list[PartBody] = Field(default_factory=list, max_length=workorders.PARTS_MAX)
    notes: str = Field(default="", max_length=5000)


@router.get("/work-orders")
def list_work_orders(
    services: Services,
    _: Viewer,
    states: Annotated[list[Status] | None, Query(alias="status")] = None,
    open: bool | None = None,  # noqa: A002 - the public query parameter is called "open"
    kind: Literal["planned", "corrective", "predictive"] | None = None,
    equipment: str | None = None,
    site: str | None = None,
    assignee: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    query = select(WorkOrder)
    if states:
        query = query.where(WorkOrder.status.in_(states))
    if open is not None:
        is_open = WorkOrder.status.in_(workorders.OPEN_STATUSES)
        query = query.where(is_open if open else ~is_open)
    for column, wanted in ((WorkOrder.kind, kind), (WorkOrder.equipment_id, equipment), (WorkOrder.site, site),
                           (WorkOrder.assignee, assignee)):
        if wanted:
            query = query.where(column == wanted)
    with services.db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = query.order_by(WorkOrder.due_at.is_(None), WorkOrder.due_at, WorkOrder.id).limit(limit).offset(offset)
        return {"items": [workorders.view(o) for o in session.scalars(page)], "total": total}


@router.post("/work-orders", status_code=201)
def create_work_order(body: NewWorkOrderBody, services: Services, principal: Operator) -> dict[str, Any]:
    """Open a corrective (operators and up) or predictive (engineers) work order."""
    if body.kind != "corrective" and not principal.role.allows(Role.ENGINEER):
        raise HTTPException(403, f"{body.kind} work orders need role engineer or above")
    new = workorders.NewWorkOrder(**body.model_dump())
    with services.db.session() as session:
        order = workorders.create(session, new, principal.username, services.clock.now())
        return workorders.view(order)


@router.get("/work-orders/{order_id}")
def get_work_order(order_id: int, services: Services, _: Viewer) -> dict[str, Any]:
    """One work order with its history (who did what, when, why)."""
    with services.db.session() as session:
        order = workorders.get(session, order_id)
        history = session.scalars(select(AuditEntry).where(
            AuditEntry.entity_type == workorders.AUDIT_ENTITY, AuditEntry.entity_id == str(order_id))
            .order_by(AuditEntry.id))
        return {**workorders.view(order), "history": [
            {"at": h.at.isoformat().replace("+00:00", "Z"), "actor": h.actor, "action": h.action,
             "reason": h.reason, "detail": h.detail} for h in history]}


def _outcome(outcome: workorders.Outcome) -> dict[str, Any]:
    return {**workorders.view(outcome.order), "released_alarms": list(outcome.released)}


@router.post("/work-orders/{order_id}/assign")
def assign_work_order(order_id: int, body: AssignBody, services: Services, principal: Engineer) -> dict[str, Any]:
    with services.db.session() as session:
        return _outcome(workorders.assign(session, order_id, body.assignee, principal.username,
                                          services.clock.now(), reason=body.reason, version=body.version))


@router.post("/work-orders/{order_id}/start")
def start_work_order(order_id: int, services: Services, principal: Engineer,
                     body: StartBody | None = None) -> dict[str, Any]:
    body = body or StartBody()
    with services.db.session() as session:
        return _outcome(workorders.start(session, order_id, principal.username, services.clock.now(),
                                         maintenance_hours=body.maintenance_hours, version=body.version))


@router.post("/work-orders/{order_id}/hold")
def hold_work_order(order_id: int, body: ReasonBody, services: Services, principal: Engineer) -> dict[str, Any]:
    with services.db.session() as session:
        return _outcome(workorders.hold(session, order_id, body.reason, principal.username, services.clock.now(),
                                        version=body.version))


@router.post("/work-orders/{order_id}/complete")
def complete_work_order(order_id: int, body: CompleteBody, services: Services,
                        principal: Engineer) -> dict[str, Any]:
    parts = [workorders.Part(p.name, p.qty, p.unit, p.code) for p in body.parts]
    with services.db.session() as session:
        return _outcome(workorders.complete(session, order_id, principal.username, services.clock.now(),
                                            minutes_spent=body.minutes_spent, parts=parts, notes=body.notes,
                                            version=body.version))


@router.post("/work-orders/{order_id}/cancel")
def cancel_work_order(order_id: int, body: ReasonBody, services: Services, principal: Engineer) -> dict[str, Any]:
    with services.db.session() as session:
        return _outcome(workorders.cancel(session, order_id, body.reason, principal.username, services.clock.now(),
                                          version=body.version))


# --- plans, technicians, schedule ----------------------------------------------------------------


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(default=30, ge=1, le=366)
    site: str | None = Field(default=None, pattern=ID)


@router.get("/maintenance/plans")
def list_plans(_: Viewer) -> dict[str, Any]:
    """The built-in plan templates per equipment type, with their tasks and sources."""
    return {"items": [{
        "equipment_type": kind, "name_zh": plan.name_zh, "name_en": plan.name_en,
        "tasks": [{"key": t.key, "title_zh": t.title_zh, "title_en": t.title_en, "interval": t.interval,
                   "skill": t.skill, "duration_min": t.duration_min, "blackout_sensitive": t.blackout_sensitive,
                   "source": t.source, "checklist": [{"zh": zh, "en": en} for zh, en in t.checklist]}
                  for t in plan.tasks],
    } for kind, plan in BUILTIN_PLANS.items()]}


@router.post("/maintenance/plans/generate")
def generate_planned(body: GenerateBody, services: Services, principal: Engineer) -> dict[str, Any]:
    """Create the planned work orders due within `days` days (idempotent)."""
    with services.db.session() as session:
        return plans.generate(session, services.clock.now(), body.days, actor=principal.username,
                              site=body.site).as_dict()


@router.get("/technicians")
def list_technicians(services: Services, _: Viewer) -> dict[str, Any]:
    with services.db.session() as session:
        return {"items": [roster.view(t) for t in session.scalars(select(Technician).order_by(Technician.id))]}


@router.get("/maintenance/schedule")
def get_schedule(
    services: Services,
    _: Viewer,
    days: Annotated[int, Query(ge=1, le=92)] = 14,
    threshold: Annotated[float, Query(ge=0, le=1)] = DEFAULT_THRESHOLD,
    site: Annotated[str | None, Query(pattern=ID)] = None,
    blackout: Annotated[list[str] | None, Query(description="TYPES=HH:MM-HH:MM[,…]; replaces the default")] = None,
    no_blackout: bool = False,
) -> dict[str, Any]:
    """A proposed day-by-day schedule (nothing is saved): due plan tasks, predicted risks and open
    work orders on the technicians' days, with a reason per item and the unschedulable ones."""
    try:
        windows = () if no_blackout else tuple(w for spec in blackout or [] for w in parse_blackout(spec)) or \
            DEFAULT_BLACKOUTS
    except ValueError as exc:
        raise HTTPException(422, f"blackout: {exc}") from None
    now = services.clock.now()
    with services.db.session() as session:
        inputs = load(session, now, days=days, threshold=threshold, site=site)
    result = build_schedule(inputs.jobs, inputs.crews, now, Options(days, windows, inputs.tz))
    return {**result.as_json(), "generated_at": now.isoformat().replace("+00:00", "Z"), "threshold": threshold,
            "blackouts": [{"equipment_types": sorted(w.equipment_types), "start": f"{w.start:%H:%M}",
                           "end": f"{w.end:%H:%M}"} for w in windows]}

