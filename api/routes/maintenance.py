"""Maintenance mode (engineer): start, list, end; and taking alarms out of service.

The alarms a change suppresses or shows again are published to the stream after the commit, like
any other alarm change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from alarms import maintenance
from alarms.events import AlarmEvent, alarm_view
from api.deps import Engineer, Services, Viewer
from api.params import Instant, PathId
from storage.state.models import Alarm, Maintenance

router = APIRouter(tags=["maintenance"])


class MaintenanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    target_kind: maintenance.TargetKind
    target: str = Field(min_length=1, max_length=200)
    reason: str = Field(max_length=2000)
    until: Instant


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=2000)


@router.post("/maintenance")
def start_maintenance(body: MaintenanceBody, services: Services, principal: Engineer) -> dict[str, Any]:
    with services.db.session() as session:
        window, suppressed = maintenance.begin(session, body.site, body.target_kind, body.target, body.reason,
                                               body.until, principal.username, services.clock.now())
        session.flush()
        result = {**maintenance.view(window), "suppressed": _views(suppressed)}
    _publish(services, result["suppressed"])
    return result


@router.get("/maintenance")
def list_maintenance(services: Services, _: Viewer, active: bool = True) -> dict[str, Any]:
    query = select(Maintenance).order_by(Maintenance.id.desc()).limit(500)
    if active:
        query = query.where(Maintenance.ended_at.is_(None), Maintenance.until > services.clock.now())
    with services.db.session() as session:
        return {"items": [maintenance.view(w) for w in session.scalars(query)]}


@router.post("/maintenance/{window_id}/end")
def end_maintenance(window_id: PathId, body: ReasonBody, services: Services, principal: Engineer) -> dict[str, Any]:
    with services.db.session() as session:
        released = maintenance.end(session, window_id, principal.username, body.reason, services.clock.now())
        session.flush()
        views = _views(released)
    _publish(services, views)
    return {"released": views}


@router.post("/alarms/{alarm_id}/out-of-service")
def out_of_service(alarm_id: PathId, body: ReasonBody, services: Services, principal: Engineer) -> dict[str, Any]:
    return _service(services, alarm_id, True, principal.username, body.reason)


@router.post("/alarms/{alarm_id}/return-to-service")
def return_to_service(alarm_id: PathId, body: ReasonBody, services: Services, principal: Engineer) -> dict[str, Any]:
    return _service(services, alarm_id, False, principal.username, body.reason)


def _service(services: Services, alarm_id: int, out: bool, actor: str, reason: str) -> dict[str, Any]:
    with services.db.session() as session:
        alarm = maintenance.set_out_of_service(session, alarm_id, out, actor, reason, services.clock.now())
        session.flush()
        [view] = _views([alarm])
    _publish(services, [view])
    return view


def _views(alarms: Sequence[Alarm]) -> list[dict[str, Any]]:
    return [alarm_view(a) for a in alarms]


def _publish(services: Services, views: list[dict[str, Any]]) -> None:
    for view in views:
        services.publish_alarm(AlarmEvent("updated", view))
