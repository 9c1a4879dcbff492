"""Applying condition changes to alarms: one transaction per transition, with its audit entry.

ISA-18.2: raise → `unack`; clear of `unack` → `rtn_unack`; clear of `acked` → `normal`;
a raise while `rtn_unack` re-activates the same alarm (`unack`) and counts a repeat.
A new row keeps its point's shelve and out of service (`alarms.points`).
Events are handed to `publish` only after the transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from alarms import lifecycle, points
from alarms.events import AlarmEvent, alarm_view
from core.clock import Clock
from core.domain import AlarmState
from rules.model import ChangeKind, ConditionChange, Source
from storage.state.database import StateDatabase
from storage.state.models import Alarm, AuditEntry

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system"
Publish = Callable[[AlarmEvent], None]


Locate = Callable[[Source], tuple[str | None, str | None]]  # (building, zone) of a source


def nowhere(_source: Source) -> tuple[str | None, str | None]:
    return None, None


class Stage(Protocol):
    """An alarm-management step (alarms.inhibit, alarms.incidents) run in the alarm's transaction
    after its lifecycle change; returns the other alarms it changed (published as `updated`)."""

    def __call__(self, session: Session, alarm: Alarm, change: ConditionChange, now: datetime) -> Sequence[Alarm]: ...


class AlarmService:
    def __init__(self, db: StateDatabase, clock: Clock, publish: Publish, locate: Locate = nowhere,
                 stages: Sequence[Stage] = ()) -> None:
        self._db, self._clock, self._publish, self._locate = db, clock, publish, locate
        self._stages = tuple(stages)  # in pipeline order (runtime): maintenance, inhibit, incidents, playbooks

    def apply(self, changes: Sequence[ConditionChange]) -> list[AlarmEvent]:
        """Apply a batch of condition changes in one transaction (one commit, one fsync, however
        many alarms a flood brings), then publish their events. Should the batch fail, each change
        is applied in its own transaction, so that one bad change cannot cost the others."""
        if len(changes) > 1:
            try:
                return self._publish_all(self._apply_together(changes))
            except Exception:
                log.exception("applying %d alarm changes together failed; applying them one by one", len(changes))
        events = []
        for change in changes:
            with self._db.session() as session:
                events.extend(self._manage(session, self._apply_one(session, change), change))
        return self._publish_all(events)

    def _apply_together(self, changes: Sequence[ConditionChange]) -> list[AlarmEvent]:
        events = []
        with self._db.session() as session:
            for change in changes:
                events.extend(self._manage(session, self._apply_one(session, change), change))
        return events

    def _publish_all(self, events: list[AlarmEvent]) -> list[AlarmEvent]:
        for event in events:
            self._publish(event)
        return events

    # --- alarm management stages (alarms/inhibit.py, alarms/incidents.py) -------------------------
    def _manage(self, session: Session, event: AlarmEvent | None, change: ConditionChange) -> list[AlarmEvent]:
        """Run the stages on the changed alarm: its event is rebuilt, the alarms they changed follow."""
        if event is None or not self._stages:
            return [] if event is None else [event]
        alarm = session.get(Alarm, event.alarm["id"])
        if alarm is None:
            return [event]
        now = alarm.updated_at  # the time `_apply_one` stamped: one transition's audit entries share it
        others = {o.id: o for stage in self._stages for o in stage(session, alarm, change, now) if o.id != alarm.id}
        session.flush()
        related = [AlarmEvent("updated", alarm_view(other)) for other in others.values()]
        return [AlarmEvent(event.event, alarm_view(alarm)), *related]
    # --- end of alarm management stages -----------------------------------------------------------

    def _apply_one(self, session: Session, change: ConditionChange) -> AlarmEvent | None:
        alarm = _open_alarm(session, change.rule.id, change.source.key)
        now = self._clock.now()
        if change.kind is ChangeKind.RAISE:
            alarm, event = _raise(session, alarm, change, now, self._locate)
        elif alarm is None:
            return None
        elif change.kind is ChangeKind.REGRADE:
            alarm.grade, alarm.updated_at, event = int(change.grade), now, "regraded"
        elif alarm.condition_active:
            event = _clear(alarm, change, now)
        else:
            return None
        session.flush()
        session.add(_audit(now, alarm, event, change))
        if event == "raised":
            points.carry(session, alarm, now)
        elif event == "repeated":
            points.record_held_repeat(session, alarm, now)
        session.flush()
        return AlarmEvent(event, alarm_view(alarm))


def _open_alarm(session: Session, rule_id: str, source: str) -> Alarm | None:
    query = select(Alarm).where(Alarm.rule_id == rule_id, Alarm.source == source,
                                Alarm.state != AlarmState.NORMAL.value)
    return session.scalars(query).one_or_none()


def _raise(session: Session, alarm: Alarm | None, change: ConditionChange, now: datetime,
           locate: Locate) -> tuple[Alarm, str]:
    if alarm is None:
        alarm = _new_alarm(change, now)
        alarm.building, alarm.zone = locate(change.source)
        session.add(alarm)
        return alarm, "raised"
    alarm.repeat_count += 1
    alarm.value = _number(change.value)
    alarm.updated_at = now
    lifecycle.process_return(alarm)
    return alarm, "repeated"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _jsonable(value: object) -> float | str | bool | None:
    return value if isinstance(value, float | str | bool) or value is None else float(value)  # type: ignore[arg-type]


def _clear(alarm: Alarm, change: ConditionChange, now: datetime) -> str:
    latched = not lifecycle.process_clear(alarm, change.at)
    alarm.value = _number(change.value) if change.value is not None else alarm.value
    alarm.updated_at = now
    return "latched" if latched else "cleared"


def _new_alarm(change: ConditionChange, now: datetime) -> Alarm:
    rule, source = change.rule, change.source
    return Alarm(
        rule_id=rule.id, source=source.key, site=source.site, family=source.family,
        device_id=source.id, category=rule.category, grade=int(change.grade),
        state=AlarmState.UNACK.value, latching=rule.latching, condition_active=True,
        message_zh=change.message("zh"),
        message_en=change.message("en"), value=_number(change.value), raised_at=change.at,
        updated_at=now, repeat_count=0,
    )


def _audit(now: datetime, alarm: Alarm, event: str, change: ConditionChange) -> AuditEntry:
    return AuditEntry(
        at=now, actor=SYSTEM_ACTOR, action=f"alarm.{event}", entity_type="alarm",
        entity_id=str(alarm.id), reason=f"rule {change.rule.id} {change.kind.value}",
        detail={"state": alarm.state, "value": _jsonable(change.value), "source": change.source.key,
                "grade": int(change.grade)},
    )
