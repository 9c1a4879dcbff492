"""Shelving and out of service belong to the alarm point (rule, source), not to one alarm row.

ISA-18.2 shelves a *point* (a chattering sensor for the night) and takes a *point* out of
service (a faulty sensor until it is repaired). fmon keeps one row per occurrence (a new
occurrence after `normal` is a new alarm), so the point's shelve and out-of-service live on its
latest row and move to the next occurrence when it is raised:

    raise of a new row   → the previous row's unexpired shelve and its out of service move to
                           the new row (cleared on the old one, so exactly one row holds them);
                           audited on the new row as `alarm.shelve` / `alarm.out_of_service` by
                           `system`, with `carried_from` and `activation: raise`
    repeat while held    → audited as `alarm.suppressed` with `by: shelved|out_of_service` and
                           `activation: repeat`

`activation` tells the KPIs that the activation was never annunciated (alarms.kpis). Unshelving
or returning the latest row to service ends it for the point. Not for: maintenance windows
(alarms.maintenance) or inhibition (alarms.inhibit), which cover places, not points.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alarms import lifecycle
from storage.state.models import Alarm, AuditEntry

SYSTEM_ACTOR = "system"
SHELVED, OUT_OF_SERVICE = "shelved", "out_of_service"


def previous(session: Session, alarm: Alarm) -> Alarm | None:
    """The point's latest row before `alarm`."""
    query = select(Alarm).where(Alarm.rule_id == alarm.rule_id, Alarm.source == alarm.source, Alarm.id < alarm.id)
    return session.scalars(query.order_by(Alarm.id.desc()).limit(1)).first()


def carry(session: Session, alarm: Alarm, now: datetime) -> None:
    """A new row of a point: take over the previous row's unexpired shelve and out of service."""
    before = previous(session, alarm)
    if before is None:
        return
    if lifecycle.is_shelved(before, now):
        alarm.shelved_until, alarm.shelved_by, alarm.shelve_reason = (
            before.shelved_until, before.shelved_by, before.shelve_reason)
        before.shelved_until = before.shelved_by = before.shelve_reason = None
        until = alarm.shelved_until.isoformat() if alarm.shelved_until else None
        session.add(_audit(now, alarm, "alarm.shelve", alarm.shelve_reason or "",
                           {"carried_from": before.id, "until": until, "activation": "raise"}))
    if before.out_of_service:
        alarm.out_of_service, before.out_of_service = True, False
        session.add(_audit(now, alarm, "alarm.out_of_service", f"the point is out of service (alarm {before.id})",
                           {"carried_from": before.id, "activation": "raise"}))


def held_by(alarm: Alarm, now: datetime) -> str | None:
    """What holds the point back from annunciation now: shelved, out of service, or nothing."""
    if alarm.out_of_service:
        return OUT_OF_SERVICE
    return SHELVED if lifecycle.is_shelved(alarm, now) else None


def record_held_repeat(session: Session, alarm: Alarm, now: datetime) -> None:
    """A repeat of a shelved or out-of-service alarm: recorded as an activation nobody was shown."""
    by = held_by(alarm, now)
    if by is not None:
        session.add(_audit(now, alarm, "alarm.suppressed", f"activation while {by.replace('_', ' ')}",
                           {"by": by, "activation": "repeat"}))


def _audit(now: datetime, alarm: Alarm, action: str, reason: str, detail: dict[str, Any]) -> AuditEntry:
    return AuditEntry(at=now, actor=SYSTEM_ACTOR, action=action, entity_type="alarm", entity_id=str(alarm.id),
                      reason=reason, detail=detail)
