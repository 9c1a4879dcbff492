"""The ISA-18.2 alarm state machine: what the process and what people may do to an alarm.

    process:  raise → unack;  clear: unack → rtn_unack, acked → normal
              (latching alarms stay unack/acked with the condition gone, until reset)
    people:   ack:      unack → acked; rtn_unack → normal
              reset:    a latched, acknowledged alarm whose condition is gone → normal
              shelve:   hide an open alarm until a time (reason required, bounded)
              unshelve: undo a shelve
              comment:  any alarm

Functions change the ORM object in place and raise `TransitionRefused` (→ 409) or
`InvalidRequest` (→ 422) naming why; the caller commits and audits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.domain import AlarmState
from core.errors import Conflict, FmonError
from storage.state.models import Alarm

DEFAULT_MAX_SHELVE = timedelta(hours=8)


class TransitionRefused(Conflict):
    """The alarm's state does not allow this action now."""


class InvalidRequest(FmonError):
    """The request itself is wrong (missing reason, shelve time out of bounds)."""


def ack(alarm: Alarm, actor: str, now: datetime) -> None:
    state = AlarmState(alarm.state)
    if state is AlarmState.UNACK:
        alarm.state = AlarmState.ACKED.value
    elif state is AlarmState.RTN_UNACK:
        alarm.state = AlarmState.NORMAL.value
    else:
        raise TransitionRefused(f"alarm {alarm.id} is {state.value}: nothing to acknowledge")
    alarm.acked_at, alarm.acked_by = now, actor


def reset(alarm: Alarm) -> None:
    if not alarm.latching:
        raise TransitionRefused(f"alarm {alarm.id} is not latching: it returns to normal by itself")
    if alarm.condition_active:
        raise TransitionRefused(f"alarm {alarm.id}: the condition is still present; reset after it clears")
    if alarm.state != AlarmState.ACKED.value:
        raise TransitionRefused(f"alarm {alarm.id} is {alarm.state}: acknowledge it before the reset")
    alarm.state = AlarmState.NORMAL.value


def shelve(alarm: Alarm, actor: str, reason: str, until: datetime, now: datetime,
           max_shelve: timedelta = DEFAULT_MAX_SHELVE) -> None:
    _need_reason(reason)
    if alarm.state == AlarmState.NORMAL.value:
        raise TransitionRefused(f"alarm {alarm.id} is normal: nothing to shelve")
    if until <= now:
        raise InvalidRequest("until must be in the future")
    if until - now > max_shelve:
        raise InvalidRequest(f"shelving is limited to {max_shelve}; until is {until - now} away")
    alarm.shelved_until, alarm.shelved_by, alarm.shelve_reason = until, actor, reason


def unshelve(alarm: Alarm, now: datetime) -> None:
    if not is_shelved(alarm, now):
        raise TransitionRefused(f"alarm {alarm.id} is not shelved")
    alarm.shelved_until = alarm.shelved_by = alarm.shelve_reason = None


def is_shelved(alarm: Alarm, now: datetime) -> bool:
    return alarm.shelved_until is not None and alarm.shelved_until > now


def process_clear(alarm: Alarm, at: datetime) -> bool:
    """The condition went away. Returns whether the alarm's state changed."""
    alarm.condition_active, alarm.cleared_at = False, at
    if alarm.latching:
        return False  # latched: stays until a person resets it
    state = AlarmState(alarm.state)
    if state is AlarmState.UNACK:
        alarm.state = AlarmState.RTN_UNACK.value
    elif state is AlarmState.ACKED:
        alarm.state = AlarmState.NORMAL.value
    return True


def process_return(alarm: Alarm) -> None:
    """The condition came back while the alarm is still open: active again, unacknowledged."""
    alarm.condition_active, alarm.cleared_at = True, None
    if alarm.state == AlarmState.RTN_UNACK.value:
        alarm.state = AlarmState.UNACK.value


def _need_reason(reason: str) -> None:
    if not reason or not reason.strip():
        raise InvalidRequest("a reason is required")
