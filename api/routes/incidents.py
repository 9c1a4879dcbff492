"""Incident routes (flood groups of alarms) and the children an alarm suppresses; read-only, viewer role."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from alarms import incidents
from alarms.inhibit import children_view
from api.deps import Services, Viewer
from core.errors import NotFound
from storage.state.models import Alarm

router = APIRouter(tags=["incidents"])


@router.get("/incidents")
def list_incidents(
    services: Services,
    _: Viewer,
    state: Literal["open", "closed"] | None = None,
    site: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Incidents, open ones first, then by grade (most severe first), then newest."""
    with services.db.session() as session:
        return incidents.list_incidents(session, state, site, limit, offset)


@router.get("/incidents/{incident_id}")
def get_incident(incident_id: int, services: Services, _: Viewer) -> dict[str, Any]:
    """One incident with its alarms (suppressed ones included and marked) and its history."""
    with services.db.session() as session:
        return incidents.incident_detail(session, incident_id)


@router.get("/alarms/{alarm_id}/children")
def alarm_children(alarm_id: int, services: Services, _: Viewer) -> dict[str, Any]:
    """The alarms this alarm suppresses now or suppressed earlier (`suppressed` tells which)."""
    with services.db.session() as session:
        if session.get(Alarm, alarm_id) is None:
            raise NotFound(f"no alarm {alarm_id}")
        items = children_view(session, alarm_id)
    return {"items": items, "total": len(items)}
