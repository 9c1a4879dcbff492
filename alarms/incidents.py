"""Flood grouping: the alarms of one place and one cause become one incident record.

The key is (site, building, zone, cause), the cause being the alarm's category. The place is
the alarm's location, or the rule's own zone: a count rule grouped by `zone` (the fire zone of
the panel's point events) or a zone rule (source family "zone", id "building/zone"). Causes that
strike a whole building or site group there (`SCOPES`: power by building, natural disasters by
site). A child raised while its parent is active (alarms.inhibit) joins the parent's incident.
An alarm's incident is fixed when it is raised: incidents are never merged or split.

An incident is open while any of its alarms is not normal; `grade` is the most severe grade
its alarms reached (and `playbook` follows the alarm that made it so); `alarm_count` counts its
alarms; `alarms_cleared_at` says since when all of them are normal. Each change is audited
(`incident.opened`, `incident.regraded`, `incident.closed`, `incident.reopened`). Operator
actions that end an alarm (ack of `rtn_unack`, reset) must call `settle()` in their transaction,
or the incident stays open.

An incident with a playbook run (a `playbook_runs` row, written by playbooks/) does not close
when its alarms clear: that is recorded (`incident.alarms_cleared`) and the run closes it. A new
activation of one of its alarms reopens it after such a close.

Not for: running playbooks (playbooks/) or publishing incident events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.orm import Session

from alarms.inhibit import is_inhibited, linked_view
from core.domain import AlarmState
from core.errors import NotFound
from rules.model import ChangeKind, ConditionChange, Count
from storage.state.models import Alarm, AuditEntry, Incident
from storage.state.playbook_models import PlaybookRun

SYSTEM_ACTOR = "system"
OPEN, CLOSED = "open", "closed"
IncidentState = Literal["open", "closed"]
Place = tuple[str | None, str | None]  # (building, zone)
SCOPES: dict[str, Literal["building", "site"]] = {"power": "building", "natural_disaster": "site"}
CAUSES = {  # category → (zh, en) for titles; unknown categories are shown as they are
    "fire": ("火警", "Fire"), "fire_system": ("消防设施故障", "Fire system fault"),
    "power": ("供电中断", "Power outage"), "comms": ("通信中断", "Communications failure"),
    "elevator": ("电梯故障", "Lift"), "gas": ("燃气泄漏", "Gas leak"), "water_leak": ("漏水", "Water leak"),
    "equipment": ("设备故障", "Equipment failure"), "air_quality": ("空气质量", "Air quality"),
    "noise": ("噪声", "Noise"), "tamper": ("计量篡改", "Meter tamper"), "energy": ("能耗异常", "Energy use"),
    "natural_disaster": ("自然灾害", "Natural disaster"),
}


class IncidentGrouper:
    """The incident stage: puts a newly raised alarm into its incident and keeps incidents current."""

    def __call__(self, session: Session, alarm: Alarm, change: ConditionChange, now: datetime) -> list[Alarm]:
        if alarm.incident_id is None and change.kind is ChangeKind.RAISE and alarm.state != AlarmState.NORMAL.value:
            alarm.incident_id = _incident_for(session, alarm, change, now).id
        if alarm.incident_id is not None:
            activated = change.kind is ChangeKind.RAISE and alarm.state != AlarmState.NORMAL.value
            refresh(session, alarm.incident_id, now, worsened_by=(alarm, change.rule.playbook), activated=activated)
        for incident_id in _childrens_incidents(session, alarm):
            refresh(session, incident_id, now)
        return []


def settle(session: Session, alarm: Alarm, now: datetime) -> None:
    """Bring the alarm's incident up to date after an operator action (ack, reset)."""
    if alarm.incident_id is not None:
        refresh(session, alarm.incident_id, now)


def place_of(alarm: Alarm, change: ConditionChange) -> Place:
    """Where the alarm groups: the rule's zone if it has one, else the alarm's location, widened by scope."""
    building, zone = alarm.building, alarm.zone
    condition = change.rule.condition
    if alarm.family == "zone" and "/" in alarm.device_id:
        found_building, zone = alarm.device_id.split("/", 1)
        building = None if found_building == "-" else found_building
    elif isinstance(condition, Count) and condition.group_by == "zone" and change.source.group:
        zone = change.source.group
    scope = SCOPES.get(alarm.category)
    if scope == "site":
        return None, None
    return (building, None) if scope == "building" else (building, zone)


def refresh(session: Session, incident_id: int, now: datetime,
            worsened_by: tuple[Alarm, str] | None = None, activated: bool = False) -> Incident | None:
    """Recount an incident from its alarms: count, most severe grade, open or closed (`activated`:
    one of its alarms was just raised).

    Written with one UPDATE that bumps `version` without checking it: bookkeeping after an alarm
    transition never fails on a concurrent edit of the incident (that edit gets the conflict).
    """
    incident = session.get(Incident, incident_id)
    if incident is None:
        return None  # deleted by hand: the alarm keeps a dangling id rather than failing its transition
    total, still_open, worst = session.execute(
        select(func.count(Alarm.id), func.count(case((Alarm.state != AlarmState.NORMAL.value, 1))),
               func.min(Alarm.grade)).where(Alarm.incident_id == incident_id)).one()
    values: dict[str, Any] = {} if total == incident.alarm_count else {"alarm_count": total}
    if worst is not None and worst < incident.grade:
        values |= _regrade(session, incident, worst, worsened_by, now)
    has_run = session.scalar(select(PlaybookRun.id).where(PlaybookRun.incident_id == incident_id)) is not None
    values |= _alarms_cleared(session, incident, total > 0 and still_open == 0, has_run, now)
    if has_run:
        values |= _reopen_on_activation(session, incident, activated, total, now)
    else:
        values |= _open_or_close(session, incident, still_open > 0, total, now)
    if values:
        session.execute(update(Incident).where(Incident.id == incident_id)
                        .values(**values, updated_at=now, version=Incident.version + 1))
    return incident


def _regrade(session: Session, incident: Incident, grade: int, worsened_by: tuple[Alarm, str] | None,
             now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"grade": grade}
    detail: dict[str, Any] = {"from": incident.grade, "to": grade}
    if worsened_by is not None and worsened_by[0].grade == grade and worsened_by[1] != incident.playbook:
        values["playbook"] = worsened_by[1]
        detail["playbook"] = {"from": incident.playbook, "to": worsened_by[1]}
    session.add(_audit(now, incident, "incident.regraded", f"an alarm reached grade {grade}", detail))
    return values


def _open_or_close(session: Session, incident: Incident, any_open: bool, total: int, now: datetime) -> dict[str, Any]:
    if any_open == (incident.state == OPEN):
        return {}
    action, reason = ("incident.reopened", "an alarm is active again") if any_open else \
        ("incident.closed", "all its alarms are normal")
    session.add(_audit(now, incident, action, reason, {"alarm_count": total}))
    return {"state": OPEN, "closed_at": None} if any_open else {"state": CLOSED, "closed_at": now}


def _alarms_cleared(session: Session, incident: Incident, all_normal: bool, has_run: bool,
                    now: datetime) -> dict[str, Any]:
    if all_normal and incident.alarms_cleared_at is None:
        if has_run and incident.state == OPEN:
            session.add(_audit(now, incident, "incident.alarms_cleared",
                               "all its alarms are normal; its playbook run keeps it open", {}))
        return {"alarms_cleared_at": now}
    if not all_normal and incident.alarms_cleared_at is not None:
        return {"alarms_cleared_at": None}
    return {}


def _reopen_on_activation(session: Session, incident: Incident, activated: bool, total: int,
                          now: datetime) -> dict[str, Any]:
    """With a playbook run, only a new activation reopens a closed incident (an acknowledgement
    of an alarm still active after the run closed it does not)."""
    if not activated or incident.state == OPEN:
        return {}
    session.add(_audit(now, incident, "incident.reopened", "an alarm is active again", {"alarm_count": total}))
    return {"state": OPEN, "closed_at": None}


def _incident_for(session: Session, alarm: Alarm, change: ConditionChange, now: datetime) -> Incident:
    parent = session.get(Alarm, alarm.parent_id) if alarm.parent_id is not None and is_inhibited(alarm) else None
    if parent is not None and parent.incident_id is not None:
        joined = session.get(Incident, parent.incident_id)
        if joined is not None and joined.state == OPEN:
            return joined
    building, zone = place_of(alarm, change)
    query = select(Incident).where(Incident.site == alarm.site, _same(Incident.building, building),
                                   _same(Incident.zone, zone), Incident.cause == alarm.category,
                                   Incident.state == OPEN).order_by(Incident.id).limit(1)
    return session.scalars(query).first() or _open(session, alarm, (building, zone), change.rule.playbook, now)


def _open(session: Session, alarm: Alarm, place: Place, playbook: str, now: datetime) -> Incident:
    title_zh, title_en = titles(alarm.category, alarm.site, place)
    incident = Incident(site=alarm.site, building=place[0], zone=place[1], cause=alarm.category,
                        playbook=playbook, state=OPEN, grade=alarm.grade, title_zh=title_zh, title_en=title_en,
                        alarm_count=0, opened_at=alarm.raised_at, updated_at=now)
    session.add(incident)
    session.flush()
    session.add(_audit(now, incident, "incident.opened", f"alarm {alarm.id} ({alarm.rule_id}) raised",
                       {"alarm_id": alarm.id, "grade": alarm.grade, "playbook": playbook}))
    return incident


def _childrens_incidents(session: Session, alarm: Alarm) -> list[int]:
    """Incidents of the alarms `alarm` suppressed, other than its own (children raised before it)."""
    query = select(Alarm.incident_id).where(Alarm.parent_id == alarm.id, Alarm.incident_id.is_not(None)).distinct()
    return [i for i in session.scalars(query) if i is not None and i != alarm.incident_id]


def _same(column: Any, value: str | None) -> ColumnElement[bool]:
    result: ColumnElement[bool] = column.is_(None) if value is None else column == value
    return result


def titles(cause: str, site: str, place: Place) -> tuple[str, str]:
    """Bilingual titles, e.g. ("火警：b1 / b1-f3-z1", "Fire: b1 / b1-f3-z1")."""
    zh, en = CAUSES.get(cause, (cause, cause))
    where = " / ".join(p for p in place if p) or site
    return f"{zh}：{where}", f"{en}: {where}"


def _audit(now: datetime, incident: Incident, action: str, reason: str, detail: dict[str, Any]) -> AuditEntry:
    return AuditEntry(at=now, actor=SYSTEM_ACTOR, action=action, entity_type="incident",
                      entity_id=str(incident.id), reason=reason, detail=detail)


# --- reading --------------------------------------------------------------------------------------

def incident_view(incident: Incident) -> dict[str, Any]:
    """The public JSON shape of an incident."""
    return {
        "id": incident.id, "site": incident.site, "building": incident.building, "zone": incident.zone,
        "cause": incident.cause, "playbook": incident.playbook, "state": incident.state,
        "grade": incident.grade, "title_zh": incident.title_zh, "title_en": incident.title_en,
        "alarm_count": incident.alarm_count, "opened_at": _iso(incident.opened_at),
        "closed_at": _iso(incident.closed_at), "updated_at": _iso(incident.updated_at), "version": incident.version,
        "alarms_cleared_at": _iso(incident.alarms_cleared_at),
    }


def list_incidents(session: Session, state: IncidentState | None = None, site: str | None = None,
                   limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """A page of incidents, open ones first, then the most severe, then the newest."""
    query = select(Incident)
    if state is not None:
        query = query.where(Incident.state == state)
    if site is not None:
        query = query.where(Incident.site == site)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = (case((Incident.state == OPEN, 0), else_=1), Incident.grade, Incident.opened_at.desc(), Incident.id.desc())
    page = session.scalars(query.order_by(*order).limit(limit).offset(offset))
    return {"items": [incident_view(i) for i in page], "total": total}


def incident_detail(session: Session, incident_id: int) -> dict[str, Any]:
    """One incident with its alarms (suppressed ones included, marked) and its audit history."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    alarms = session.scalars(select(Alarm).where(Alarm.incident_id == incident_id).order_by(Alarm.id))
    history = session.scalars(select(AuditEntry).where(
        AuditEntry.entity_type == "incident", AuditEntry.entity_id == str(incident_id)).order_by(AuditEntry.id))
    return {**incident_view(incident), "alarms": [linked_view(a) for a in alarms],
            "history": [{"at": _iso(h.at), "actor": h.actor, "action": h.action, "reason": h.reason,
                         "detail": h.detail} for h in history]}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
