"""Incident routes: incidents with their playbook runs (read: viewer), the operator's actions on
them (start, complete / skip / assign / comment a step, close: operator), the report, and the
children an alarm suppresses.

Actions are `playbooks.actions.IncidentActions`: one transaction each, audited, published on the
stream (`incident.opened`, `step.updated`, `incident.closed`) after commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from alarms.inhibit import children_view
from alarms.lifecycle import InvalidRequest
from api.deps import Operator, Services, Viewer
from core.errors import NotFound
from playbooks import report, views
from playbooks.actions import StartRequest
from storage.state.models import Alarm, Site

router = APIRouter(tags=["incidents"])
ID = r"^[A-Za-z0-9_-]{1,64}$"
STEP = r"^[a-z][a-z0-9-]{0,63}$"
Text = Annotated[str, Field(max_length=2000)]
StepId = Annotated[str, Path(pattern=STEP, description="the step's id in the playbook, e.g. close-valve")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartBody(_Body):
    playbook: str = Field(pattern=r"^[a-z][a-z0-9-]{0,63}$", description="playbook key, e.g. gas-leak")
    site: str = Field(pattern=ID)
    grade: int = Field(ge=1, le=4)
    building: str | None = Field(default=None, pattern=ID)
    zone: str | None = Field(default=None, pattern=ID)
    device: str | None = Field(default=None, pattern=r"^[a-z_]{1,32}/[A-Za-z0-9_-]{1,64}$",
                               description="family/device_id commanded by `target: source` steps")
    note: Text = ""


class CompleteBody(_Body):
    option: str | None = Field(default=None, pattern=STEP, description="the decision's option")
    confirm: bool = Field(default=False, description="send (or retry) the step's device command")
    reason: Text = Field(default="", description="a note; required when the option closes the incident")
    version: int | None = Field(default=None, ge=1, description="the step version you saw; 409 if it changed")


class SkipBody(_Body):
    reason: Text
    version: int | None = Field(default=None, ge=1)


class AssignBody(_Body):
    assignee: str = Field(min_length=1, max_length=64)
    version: int | None = Field(default=None, ge=1)


class CommentBody(_Body):
    text: Text
    photo_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://\S+$")


class CloseBody(_Body):
    reason: Text
    version: int | None = Field(default=None, ge=1, description="the incident version you saw")


@router.get("/incidents")
def list_incidents(
    services: Services,
    _: Viewer,
    state: Literal["open", "closed"] | None = None,
    site: Annotated[str | None, Query(pattern=ID)] = None,
    playbook: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{0,63}$")] = None,
    grade: Annotated[list[Annotated[int, Field(ge=1, le=4)]] | None, Query()] = None,
    opened_from: Annotated[datetime | None, Query(alias="from")] = None,
    opened_to: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Incidents, open ones first, then by grade (most severe first), then newest; each with a
    summary of its playbook run. `from`/`to` bound the opening time (with a UTC offset)."""
    for value in (opened_from, opened_to):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest("from/to need a UTC offset, e.g. 2026-11-21T08:00:00Z")
    if opened_from is not None and opened_to is not None and opened_from >= opened_to:
        raise InvalidRequest("from must be before to")
    filters = views.Filters(state, site, playbook, tuple(grade or ()), opened_from, opened_to, limit, offset)
    with services.db.session() as session:
        return views.list_incidents(session, filters, services.clock.now())


@router.post("/incidents", status_code=201)
def start_incident(body: StartBody, services: Services, principal: Operator) -> dict[str, Any]:
    """Start a playbook by hand (a phone call, a patrol): opens the incident, or takes the open
    one of that place and cause that has no playbook yet."""
    request = StartRequest(body.playbook, body.site, body.grade, body.building, body.zone, body.device, body.note)
    return services.incidents.start(principal.username, request)


@router.get("/incidents/{incident_id}")
def get_incident(incident_id: int, services: Services, _: Viewer) -> dict[str, Any]:
    """One incident: its alarms (suppressed ones included and marked), history, and its playbook
    run with every step, device command and piece of evidence."""
    with services.db.session() as session:
        return views.incident_detail(session, incident_id, services.clock.now())


@router.post("/incidents/{incident_id}/steps/{step_id}/complete")
def complete_step(incident_id: int, step_id: StepId, body: CompleteBody,
                  services: Services, principal: Operator) -> dict[str, Any]:
    """Mark a step done; a decision takes `option`; a command step takes `confirm: true`."""
    return services.incidents.complete(incident_id, step_id, principal.username, option=body.option,
                                       confirm=body.confirm, reason=body.reason, version=body.version)


@router.post("/incidents/{incident_id}/steps/{step_id}/skip")
def skip_step(incident_id: int, step_id: StepId, body: SkipBody, services: Services,
              principal: Operator) -> dict[str, Any]:
    return services.incidents.skip(incident_id, step_id, principal.username, body.reason, body.version)


@router.post("/incidents/{incident_id}/steps/{step_id}/assign")
def assign_step(incident_id: int, step_id: StepId, body: AssignBody, services: Services,
                principal: Operator) -> dict[str, Any]:
    return services.incidents.assign(incident_id, step_id, principal.username, body.assignee, body.version)


@router.post("/incidents/{incident_id}/steps/{step_id}/comment")
def comment_step(incident_id: int, step_id: StepId, body: CommentBody, services: Services,
                 principal: Operator) -> dict[str, Any]:
    return services.incidents.comment(incident_id, step_id, principal.username, body.text, body.photo_url)


@router.post("/incidents/{incident_id}/close")
def close_incident(incident_id: int, body: CloseBody, services: Services, principal: Operator) -> dict[str, Any]:
    """Close with a reason; 409 naming the mandatory steps still open."""
    return services.incidents.close(incident_id, principal.username, body.reason, body.version)


@router.get("/incidents/{incident_id}/report", response_model=None)
def incident_report(incident_id: int, services: Services, _: Viewer,
                    format: Literal["md", "html"] = "md") -> Response:  # noqa: A002 - the public parameter name
    """The incident report (Markdown or HTML); an open incident's report is marked as interim."""
    with services.db.session() as session:
        incident = views.require_incident(session, incident_id)
        built = report.build(session, incident_id, services.clock.now(), timezone=_site_zone(session.get(
            Site, incident.site)))
        if format == "html":
            return HTMLResponse(report.html(built))
        return PlainTextResponse(report.markdown(built), media_type="text/markdown; charset=utf-8")


@router.get("/alarms/{alarm_id}/children")
def alarm_children(alarm_id: int, services: Services, _: Viewer) -> dict[str, Any]:
    """The alarms this alarm suppresses now or suppressed earlier (`suppressed` tells which)."""
    with services.db.session() as session:
        if session.get(Alarm, alarm_id) is None:
            raise NotFound(f"no alarm {alarm_id}")
        items = children_view(session, alarm_id)
    return {"items": items, "total": len(items)}


def _site_zone(site: Site | None) -> ZoneInfo:
    try:
        return ZoneInfo(site.timezone) if site is not None and site.timezone else report.DEFAULT_TIMEZONE
    except (ZoneInfoNotFoundError, ValueError):
        return report.DEFAULT_TIMEZONE
