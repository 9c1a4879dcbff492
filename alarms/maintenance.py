"""Maintenance mode and out of service: alarms suppressed by design (ISA-18.2).

While a device, zone, building or piece of equipment is in maintenance, its alarms are recorded
with `suppressed_by = "maintenance:<id>"` and not annunciated (the console, escalation and
notifications skip suppressed alarms): those raised meanwhile, and those already open when the
window starts. Ending the maintenance (or its `until` passing) shows the still-active ones again
and returns the cleared ones to normal. Out of service is the per-point equivalent an engineer
sets on a faulty point (it stays with the point, `alarms.points`).

Every change is audited: `alarm.suppressed` / `alarm.unsuppressed` / `alarm.normalised` with
`by = "maintenance:<id>"`; `activation` (raise, repeat) on a suppression that hid an activation
tells the KPIs it was never annunciated (as for inhibition, `alarms.inhibit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from alarms.inhibit import activation
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
    """The alarm-service stage: an alarm activated under an active maintenance window is suppressed."""

    def __call__(self, session: Session, alarm: Alarm, change: ConditionChange, now: datetime) -> Sequence[Alarm]:
        if alarm.state == AlarmState.NORMAL.value:
            return []
        hidden = activation(alarm, change)
        if is_maintenance(alarm):
            if hidden is not None:  # a repeat while suppressed: recorded as never annunciated
                _suppressed(session, alarm, alarm.suppressed_by or "", hidden, now)
            return []
        window = covering(session, alarm, now) if alarm.suppressed_by is None else None
        if window is not None:
            suppress(session, alarm, window, hidden, now)
        return []


def is_maintenance(alarm: Alarm) -> bool:
    return alarm.suppressed_by is not None and alarm.suppressed_by.startswith(TAG)


def suppress(session: Session, alarm: Alarm, window: Maintenance, hidden: str | None, now: datetime) -> None:
    """Suppress `alarm` by `window`; `hidden` is the activation this hides (raise, repeat) or None."""
    alarm.suppressed_by, alarm.updated_at = f"{TAG}{window.id}", now
    _suppressed(session, alarm, alarm.suppressed_by, hidden, now)


def _suppressed(session: Session, alarm: Alarm, by: str, hidden: str | None, now: datetime) -> None:
    session.add(_audit(now, "system", "alarm.suppressed", str(alarm.id), f"{by.replace(':', ' ')} is active",
                       {"by": by, "activation": hidden}, entity="alarm"))


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
    """Start a maintenance window; the open alarms it covers are suppressed at once."""
    return begin(session, site, kind, target, reason, until, actor, now)[0]


def begin(session: Session, site: str, kind: TargetKind, target: str, reason: str, until: datetime,
          actor: str, now: datetime) -> tuple[Maintenance, list[Alarm]]:
    """`start`, also returning the open alarms it suppressed (to publish after the commit)."""
    if not reason.strip():
        raise InvalidRequest("a reason is required")
    if not now < until <= now + MAX_MAINTENANCE:
        raise InvalidRequest(f"until must be in the future and within {MAX_MAINTENANCE.days} days")
    window = Maintenance(site=site, target_kind=kind, target=target, reason=reason, created_by=actor,
                         starts_at=now, until=until)
    session.add(window)
    session.flush()
    session.add(_audit(now, actor, "maintenance.start", str(window.id), reason, {"kind": kind, "target": target}))
    return window, _suppress_open(session, window, now)


def _suppress_open(session: Session, window: Maintenance, now: datetime) -> list[Alarm]:
    """The site's open, shown alarms that `window` covers, suppressed (already annunciated: no activation)."""
    query = select(Alarm).where(Alarm.site == window.site, Alarm.state != AlarmState.NORMAL.value,
                                Alarm.suppressed_by.is_(None)).order_by(Alarm.id)
    covered = []
    for alarm in session.scalars(query).all():
        by = covering(session, alarm, now)  # this window, or an older one that covers it too
        if by is not None:
            suppress(session, alarm, by, None, now)
            covered.append(alarm)
    return covered


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
    """Show again the alarms `tag` suppressed; those whose condition cleared meanwhile go to normal."""
    alarms = list(session.scalars(select(Alarm).where(Alarm.suppressed_by == tag).order_by(Alarm.id)))
    for alarm in alarms:
        before = alarm.state
        alarm.suppressed_by, alarm.updated_at = None, now
        action, why = "alarm.unsuppressed", f"{tag.replace(':', ' ')} ended"
        if not alarm.condition_active and not alarm.latching:
            alarm.state = AlarmState.NORMAL.value  # cleared while nobody was shown it
            action, why = "alarm.normalised", f"{why}; the condition cleared meanwhile"
        session.add(_audit(now, "system", action, str(alarm.id), why,
                           {"by": tag, "from": before, "to": alarm.state}, entity="alarm"))
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
