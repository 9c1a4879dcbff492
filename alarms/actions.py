"""What people do to alarms: acknowledge, shelve, unshelve, reset, comment.

Each action is one transaction: load, check the expected `version` (optimistic concurrency:
two operators cannot both handle one alarm; the second gets `Conflict`), apply the lifecycle
transition, append who/when/why to the audit log, commit, then publish the event.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.orm.exc import StaleDataError

from alarms import incidents, lifecycle
from alarms.events import AlarmEvent, alarm_view
from alarms.service import Publish
from core.clock import Clock
from core.errors import Conflict, NotFound
from storage.state.database import StateDatabase
from storage.state.models import Alarm, AuditEntry


class Action(StrEnum):
    ACK = "ack"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    RESET = "reset"
    COMMENT = "comment"


class AlarmActions:
    def __init__(self, db: StateDatabase, clock: Clock, publish: Publish,
                 max_shelve: timedelta = lifecycle.DEFAULT_MAX_SHELVE) -> None:
        self._db, self._clock, self._publish, self._max_shelve = db, clock, publish, max_shelve

    def perform(self, alarm_id: int, action: Action, actor: str, reason: str = "",
                until: datetime | None = None, version: int | None = None) -> dict[str, Any]:
        now = self._clock.now()
        try:
            with self._db.session() as session:
                alarm = session.get(Alarm, alarm_id)
                if alarm is None:
                    raise NotFound(f"no alarm {alarm_id}")
                if version is not None and alarm.version != version:
                    raise Conflict(f"alarm {alarm_id} changed (version {alarm.version}, not {version}): reload it")
                before = alarm.state
                self._apply(alarm, action, actor, reason, until, now)
                session.add(_audit(now, actor, alarm, action, reason, before, until))
                incidents.settle(session, alarm, now)
                session.flush()
                view = alarm_view(alarm)
        except StaleDataError:
            raise Conflict(f"alarm {alarm_id} was changed by someone else at the same time: reload it") from None
        self._publish(AlarmEvent("updated", view))
        return view

    def _apply(self, alarm: Alarm, action: Action, actor: str, reason: str, until: datetime | None,
               now: datetime) -> None:
        if action is Action.ACK:
            lifecycle.ack(alarm, actor, now)
        elif action is Action.RESET:
            lifecycle.reset(alarm)
        elif action is Action.SHELVE:
            if until is None:
                raise lifecycle.InvalidRequest("shelve needs until")
            lifecycle.shelve(alarm, actor, reason, until, now, self._max_shelve)
        elif action is Action.UNSHELVE:
            lifecycle.unshelve(alarm, now)
        elif not reason.strip():
            raise lifecycle.InvalidRequest("a comment needs text in reason")
        if action is not Action.COMMENT:
            alarm.updated_at = now


def _audit(now: datetime, actor: str, alarm: Alarm, action: Action, reason: str, before: str,
           until: datetime | None) -> AuditEntry:
    detail: dict[str, Any] = {"from": before, "to": alarm.state}
    if until is not None:
        detail["until"] = until.isoformat()
    return AuditEntry(at=now, actor=actor, action=f"alarm.{action.value}", entity_type="alarm",
                      entity_id=str(alarm.id), reason=reason, detail=detail)
