"""Maintenance mode and out of service: alarms suppressed by design (ISA-18.2).

While a device, zone, building or piece of equipment is in maintenance, alarms raised there are
recorded with `suppressed_by = "maintenance:<id>"` and not annunciated (the console, escalation
and notifications skip suppressed alarms). Ending the maintenance (or its `until` passing) shows
the still-active ones again and returns the cleared ones to normal. Out of service is the
per-alarm equivalent an engineer sets on a faulty point. Every change is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from alarms.lifecycle import InvalidRequest, TransitionRefused
from core.domain import AlarmState
from core.errors import NotFound
from rules.model import ConditionChange
from storage.state.equipment_models import equipment_of_device
from storage.state.models import Alarm, AuditEntry, Maintenance

TAG = "maintenance:"
MAX_MAINTENANCE = timedelta(days=30)
TargetKind = Literal["device", "zone", "building", "equipment"]


class MaintenanceStage:
    """The alarm-service stage: a new alarm under an active maintenance window is suppressed."""

    def __call__(self, session: Session, alarm: Alarm, change: ConditionChange,  # noqa: ARG002 - Stage protocol
                 now: datetime) -> Sequence[Alarm]:
        if alarm.suppressed_by is not None or alarm.state == AlarmState.NORMAL.value:
            return []
        window = covering(session, alarm, now)
        if window is not None:
            alarm.suppressed_by = f"{TAG}{window.id}"
        return []


def covering(session: Session, alarm: Alarm, now: datetime) -> Maintenance | None:
    targets = [("device", f"{alarm.site}/{alarm.family}/{alarm.device_id}")]
    if alarm.building:
        targets.append(("building", alarm.building))
        if alarm.zone:
            targets.append(("zone", f"{alarm.building}/{alarm.zone}"))
    # equipment in maintenance covers the devices that monitor it (ledger links, inventory equipment_id)
    targets += [("equipment", code) for code in equipment_of_device(session, alarm.site, alarm.family,
                                                                    alarm.device_id)]
    query = select(Maintenance).where(
        Maintenance.site == alarm.site, Maintenance.ended_at.is_(None), Maintenance.starts_at <= now,
        Maintenance.until > now,
        or_(*[(Maintenance.target_kind == kind) & (Maintenance.target == target) for kind, target in targets]))
    return session.scalars(query.order_by(Maintenance.id)).first()


def start(session: Session, site: str, kind: TargetKind, target: str, reason: str, until: datetime,
          actor: str, now: datetime) -> Maintenance:
    if not reason.strip():
        raise InvalidRequest("a reason is required")
    if not now < until <= now + MAX_MAINTENANCE:
        raise InvalidRequest(f"until must be in the future and within {MAX_MAINTENANCE.days} days")
    window = Maintenance(site=site, target_kind=kind, target=target, reason=reason, created_by=actor,
                         starts_at=now, until=until)
    session.add(window)
    session.flush()
    session.add(_audit(now, actor, "maintenance.start", str(window.id), reason, {"kind": kind, "target": target}))
    return window


def end(session: Session, window_id: int, actor: str, reason: str, now: datetime) -> list[Alarm]:
    """End a maintenance window; returns the alarms shown again or returned to normal."""
    window = session.get(Maintenance, window_id)
    if window is None:
        raise NotFound(f"no maintenance {window_id}")
    if window.ended_at is not None:
        raise TransitionRefused(f"maintenance {window_id} already ended")
    window.ended_at = now
    session.add(_audit(now, actor, "maintenance.end", str(window_id), reason, {}))
    return release(session, f"{TAG}{window_id}", now)


def expire(session: Session, now: datetime) -> list[Alarm]:
    """End windows whose `until` has passed (called periodically)."""
    released: list[Alarm] = []
    due = select(Maintenance).where(Maintenance.ended_at.is_(None), Maintenance.until <= now)
    for window in session.scalars(due).all():
        released += end(session, window.id, "system", "maintenance window ran out", now)
    return released


def release(session: Session, tag: str, now: datetime) -> list[Alarm]:
    alarms = list(session.scalars(select(Alarm).where(Alarm.suppressed_by == tag)))
    for alarm in alarms:
        alarm.suppressed_by, alarm.updated_at = None, now
        if not alarm.condition_active and not alarm.latching:
            alarm.state = AlarmState.NORMAL.value  # cleared while nobody was shown it
    return alarms


def set_out_of_service(session: Session, alarm_id: int, out: bool, actor: str, reason: str,
                       now: datetime) -> Alarm:
    if not reason.strip():
        raise InvalidRequest("a reason is required")
    alarm = session.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFound(f"no alarm {alarm_id}")
    if alarm.out_of_service == out:
        raise TransitionRefused(f"alarm {alarm_id} is {'already' if out else 'not'} out of service")
    alarm.out_of_service, alarm.updated_at = out, now
    action = "alarm.out_of_service" if out else "alarm.return_to_service"
    session.add(_audit(now, actor, action, str(alarm_id), reason, {}, entity="alarm"))
    return alarm


def view(window: Maintenance) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat().replace("+00:00", "Z")

    return {"id": window.id, "site": window.site, "target_kind": window.target_kind, "target": window.target,
            "reason": window.reason, "created_by": window.created_by, "starts_at": iso(window.starts_at),
            "until": iso(window.until), "ended_at": iso(window.ended_at)}


def _audit(now: datetime, actor: str, action: str, entity_id: str, reason: str, detail: dict[str, Any],
           entity: str = "maintenance") -> AuditEntry:
    return AuditEntry(at=now, actor=actor, action=action, entity_type=entity, entity_id=entity_id,
                      reason=reason, detail=detail)
