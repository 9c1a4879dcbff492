"""Alarm routes: list with filters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy import func, select

from alarms.events import alarm_view
from api.deps import Services, Viewer
from core.domain import AlarmState
from storage.state.models import Alarm

router = APIRouter(prefix="/alarms", tags=["alarms"])


@router.get("")
def list_alarms(
    services: Services,
    _: Viewer,
    state: Annotated[list[AlarmState] | None, Query()] = None,
    open: bool | None = None,  # noqa: A002 - the public query parameter is called "open"
    grade: Annotated[list[Annotated[int, Field(ge=1, le=4)]] | None, Query()] = None,
    category: str | None = None,
    site: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    query = select(Alarm)
    if state:
        query = query.where(Alarm.state.in_([s.value for s in state]))
    if open is not None:
        normal = Alarm.state == AlarmState.NORMAL.value
        query = query.where(~normal if open else normal)
    if grade:
        query = query.where(Alarm.grade.in_(grade))
    if category:
        query = query.where(Alarm.category == category)
    if site:
        query = query.where(Alarm.site == site)
    if since:
        query = query.where(Alarm.raised_at >= since)
    if until:
        query = query.where(Alarm.raised_at < until)
    with services.db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = query.order_by(Alarm.grade, Alarm.raised_at.desc(), Alarm.id.desc()).limit(limit).offset(offset)
        items = [alarm_view(a) for a in session.scalars(page)]
    return {"items": items, "total": total}
