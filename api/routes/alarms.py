"""Alarm routes: list with filters and sorting, one alarm with its history, and the operator
actions (ack, shelve, unshelve, reset, comment), single and bulk."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from alarms.actions import Action
from alarms.events import alarm_view
from alarms.inhibit import children_view, visible
from api.deps import Operator, Services, Viewer
from api.errors import STATUS
from api.params import MAX_ID, BodyId, Instant, PathId
from core.domain import AlarmState
from core.errors import FmonError, NotFound
from storage.state.models import Alarm, AuditEntry

router = APIRouter(prefix="/alarms", tags=["alarms"])
SORTS = {"grade": Alarm.grade, "raised_at": Alarm.raised_at, "updated_at": Alarm.updated_at, "id": Alarm.id}
SortKey = Literal["grade", "-grade", "raised_at", "-raised_at", "updated_at", "-updated_at", "id", "-id"]


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)
    until: Instant | None = None
    version: int | None = Field(default=None, ge=1, le=MAX_ID, description="the version you saw; 409 if it changed")


class BulkItem(BaseModel):
    """One alarm of a bulk action, with the version the operator saw (409 for it alone if stale)."""

    model_config = ConfigDict(extra="forbid")

    id: BodyId
    version: int | None = Field(default=None, ge=1, le=MAX_ID)


class BulkBody(BaseModel):
    """A bulk action: `ids` are plain ids or `{"id": …, "version": …}` items."""

    model_config = ConfigDict(extra="forbid")

    ids: list[BodyId | BulkItem] = Field(min_length=1, max_length=500)
    reason: str = Field(default="", max_length=2000)
    until: Instant | None = None

    def items(self) -> list[BulkItem]:
        """One item per alarm id (the first mention wins), in the order given."""
        first: dict[int, BulkItem] = {}
        for given in self.ids:
            item = given if isinstance(given, BulkItem) else BulkItem(id=given)
            first.setdefault(item.id, item)
        return list(first.values())


@router.get("")
def list_alarms(
    services: Services,
    _: Viewer,
    state: Annotated[list[AlarmState] | None, Query()] = None,
    open: bool | None = None,  # noqa: A002 - the public query parameter is called "open"
    grade: Annotated[list[Annotated[int, Field(ge=1, le=4)]] | None, Query()] = None,
    category: str | None = None,
    site: str | None = None,
    building: str | None = None,
    shelved: bool | None = None,
    suppressed: bool | None = None,
    since: Instant | None = None,
    until: Instant | None = None,
    sort: Annotated[list[SortKey] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    query = select(Alarm)
    now = services.clock.now()
    if state:
        query = query.where(Alarm.state.in_([s.value for s in state]))
    if grade:
        query = query.where(Alarm.grade.in_(grade))
    for column, wanted in ((Alarm.category, category), (Alarm.site, site), (Alarm.building, building)):
        if wanted:
            query = query.where(column == wanted)
    if since:
        query = query.where(Alarm.raised_at >= since)
    if until:
        query = query.where(Alarm.raised_at < until)
    if open is not None:
        normal = Alarm.state == AlarmState.NORMAL.value
        query = query.where(~normal if open else normal)
    if suppressed is not None:
        query = query.where(visible(suppressed))
    if shelved is not None:
        is_shelved = (Alarm.shelved_until.is_not(None)) & (Alarm.shelved_until > now)
        query = query.where(is_shelved if shelved else ~is_shelved)
    with services.db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = query.order_by(*_order(sort)).limit(limit).offset(offset)
        items = [alarm_view(a) for a in session.scalars(page)]
    return {"items": items, "total": total}


@router.get("/{alarm_id}")
def get_alarm(alarm_id: PathId, services: Services, _: Viewer) -> dict[str, Any]:
    with services.db.session() as session:
        alarm = session.get(Alarm, alarm_id)
        if alarm is None:
            raise NotFound(f"no alarm {alarm_id}")
        history = session.scalars(select(AuditEntry).where(
            AuditEntry.entity_type == "alarm", AuditEntry.entity_id == str(alarm_id)).order_by(AuditEntry.id))
        return {**alarm_view(alarm), "children": children_view(session, alarm_id), "history": [
            {"at": h.at.isoformat().replace("+00:00", "Z"), "actor": h.actor, "action": h.action,
             "reason": h.reason, "detail": h.detail} for h in history]}


@router.post("/{action}")
def bulk_action(action: Action, body: BulkBody, services: Services, principal: Operator) -> dict[str, Any]:
    """The same action on many alarms; each succeeds or fails on its own."""
    results = []
    for item in body.items():
        try:
            alarm = services.actions.perform(item.id, action, principal.username, body.reason, body.until,
                                             item.version)
            results.append({"id": item.id, "status": 200, "alarm": alarm})
        except FmonError as exc:
            results.append({"id": item.id, "status": status_of(exc), "detail": str(exc)})
    return {"results": results}


@router.post("/{alarm_id}/{action}")
def alarm_action(alarm_id: PathId, action: Action, body: ActionBody, services: Services,
                 principal: Operator) -> dict[str, Any]:
    return services.actions.perform(alarm_id, action, principal.username, body.reason, body.until, body.version)


def status_of(exc: FmonError) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 400)


def _order(sort: list[SortKey] | None) -> list[Any]:
    keys = sort or ["grade", "-raised_at"]
    order = [SORTS[k.lstrip("-")].desc() if k.startswith("-") else SORTS[k].asc() for k in keys]
    return [*order, Alarm.id.desc()]
