"""Escalation and response clocks, computed from the alarm row and the notification log.

Nothing here keeps a timer. `plan(alarm, router, now, history)` says which notifications about
an alarm should exist by `now`, from the alarm's own columns (raised_at, grade, state, acked_at,
shelved_until, suppressed_by, out_of_service, cleared_at) and what the log says was sent. The
`EscalationScheduler` records the missing ones; the log's unique key (alarm, receiver, reason)
makes each happen once. After a restart the same computation gives the same answer, so nothing
fires twice and nothing is forgotten: every clock is durable by construction.

An unacknowledged alarm raised at t0, with response time R and reminder interval N (per grade
and site, `alarms.routing.Router.response_clock`):

    t0        raised        → tier 1 on duty at t0, and the routes' receivers
    t0        page          → grade 1 only: tier 3 (project manager) at once
    t0 + R    escalation-2  → tier 2 on duty then
    t0 + 2R   escalation-3  → tier 3 on duty then
    t0 + kN   renotify-k    → every tier reached by then, except who was told within the last N;
                              only the latest k is sent (missed reminders are not replayed), k ≤ max

The handling clock H (DESIGN.md §4: 30 min for grades 1–2, 4 h for grades 3–4) runs from t0 too,
whether or not the alarm was acknowledged:

    t0 + H    handling-overdue → the next tier above the highest one the response clock reached
                              (by the acknowledgement, or by t0 + H), at most tier 3; once — if the
                              alarm is still unhandled then: its condition still present, or latched
                              and not reset

Shelved, suppressed and out-of-service alarms get nothing while they are so; once released, what
is due by then goes out. Acknowledging stops escalation and reminders (`acked` is then told to
whoever was paged, escalated to or reminded); so does the condition clearing (`cleared` is told to whoever
was notified, if the receiver has `send_resolved`). Quiet hours record grade 3–4 entries as muted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from alarms import lifecycle
from alarms.notify import reasons
from alarms.notify.nflog import Entry, NewEntry, NotificationLog, Status
from alarms.routing import PROJECT_MANAGER_TIER, ResponseClock, RouteDecision, Router
from core.domain import AlarmState, Grade
from storage.state.database import StateDatabase
from storage.state.models import Alarm

log = logging.getLogger(__name__)

OPEN_STATES = tuple(s.value for s in AlarmState if s.is_open)
DEFAULT_LOOKBACK = timedelta(hours=1)
_TOLD = (Status.SENT,)


@dataclass(frozen=True, slots=True)
class Due:
    """A notification that should exist: to `receiver`, for `reason`, due at `due_at`."""

    receiver: str
    reason: str
    due_at: datetime
    muted: bool = False


def held(alarm: Alarm, now: datetime) -> bool:
    """Shelved, suppressed by design or out of service: nobody is notified about it now."""
    return lifecycle.is_shelved(alarm, now) or alarm.suppressed_by is not None or alarm.out_of_service


def escalates(alarm: Alarm, now: datetime) -> bool:
    """Whether the alarm's response clock is running: active (or latched) and unacknowledged, not held."""
    return alarm.state == AlarmState.UNACK.value and not held(alarm, now)


def unhandled(alarm: Alarm, now: datetime) -> bool:
    """Whether the handling clock runs: not back to normal (or latched and not reset), not held."""
    open_ = alarm.state != AlarmState.NORMAL.value
    return open_ and bool(alarm.condition_active or alarm.latching) and not held(alarm, now)


def plan(alarm: Alarm, router: Router, now: datetime, history: Sequence[Entry] = ()) -> list[Due]:
    """Every notification about `alarm` that should exist by `now` (see the module docstring)."""
    grade = Grade(alarm.grade)
    route = router.routes(alarm.site, alarm.category, grade)
    due: list[Due] = []
    if alarm.state != AlarmState.NORMAL.value and not held(alarm, now):
        due += _immediate(alarm, router, route, grade)
        if route.roster and escalates(alarm, now):
            clock = router.response_clock(alarm.site, grade)
            due += _escalations(alarm, router, clock, now, due)
            due += _reminder(alarm, router, clock, grade, now, due)
        if route.roster and unhandled(alarm, now):
            due += _handling_overdue(alarm, router, router.response_clock(alarm.site, grade), grade, now)
    due += _notices(alarm, router, history)
    return [replace(d, muted=router.muted(d.receiver, grade, d.due_at)) for d in _unique(due)]


def _immediate(alarm: Alarm, router: Router, route: RouteDecision, grade: Grade) -> list[Due]:
    t0 = alarm.raised_at
    tier_1 = router.on_duty(alarm.site, 1, t0) if route.roster else ()
    due = [Due(r, reasons.RAISED, t0) for r in (*tier_1, *route.receivers)]
    if route.roster and grade is Grade.GRADE_1:
        told = {d.receiver for d in due}
        due += [Due(r, reasons.PAGE, t0) for r in router.on_duty(alarm.site, PROJECT_MANAGER_TIER, t0) if r not in told]
    return due


def _escalations(alarm: Alarm, router: Router, clock: ResponseClock, now: datetime, earlier: list[Due]) -> list[Due]:
    told = {d.receiver for d in earlier}
    due: list[Due] = []
    for tier in range(2, PROJECT_MANAGER_TIER + 1):
        at = alarm.raised_at + (tier - 1) * clock.response
        if at > now:
            break
        for receiver in router.on_duty(alarm.site, tier, at):
            if receiver not in told:
                due.append(Due(receiver, reasons.escalation(tier), at))
                told.add(receiver)
    return due


def _reminder(alarm: Alarm, router: Router, clock: ResponseClock, grade: Grade, now: datetime,
              earlier: list[Due]) -> list[Due]:
    """The latest reminder due by `now`, to every tier reached by then."""
    count = int((now - alarm.raised_at) / clock.renotify_every)
    if count < 1 or count > clock.max_renotify:
        return []
    at = alarm.raised_at + count * clock.renotify_every
    recently = {d.receiver for d in earlier if d.due_at > at - clock.renotify_every}
    tiers = [t for t in range(1, PROJECT_MANAGER_TIER + 1) if alarm.raised_at + (t - 1) * clock.response <= at]
    if grade is Grade.GRADE_1 and PROJECT_MANAGER_TIER not in tiers:
        tiers.append(PROJECT_MANAGER_TIER)
    receivers = dict.fromkeys(r for t in tiers for r in router.on_duty(alarm.site, t, at))
    return [Due(r, reasons.renotify(count), at) for r in receivers if r not in recently]


def _handling_overdue(alarm: Alarm, router: Router, clock: ResponseClock, grade: Grade, now: datetime) -> list[Due]:
    """`handling-overdue` to the next tier on duty at t0 + H, once the handling time has passed."""
    at = alarm.raised_at + clock.handling
    if at > now:
        return []
    tier = _next_tier(alarm, clock, grade, at)
    return [Due(r, reasons.HANDLING_OVERDUE, at) for r in router.on_duty(alarm.site, tier, at)]


def _next_tier(alarm: Alarm, clock: ResponseClock, grade: Grade, at: datetime) -> int:
    """The tier above the highest the response clock reached by the acknowledgement (or `at`)."""
    until = min(at, alarm.acked_at) if alarm.acked_at is not None else at
    reached = max(t for t in range(1, PROJECT_MANAGER_TIER + 1) if alarm.raised_at + (t - 1) * clock.response <= until)
    if grade is Grade.GRADE_1:
        reached = PROJECT_MANAGER_TIER  # paged at once
    return min(reached + 1, PROJECT_MANAGER_TIER)


def _notices(alarm: Alarm, router: Router, history: Sequence[Entry]) -> list[Due]:
    """`cleared` to whoever was told about the alarm; `acked` to whoever was paged, escalated to or reminded."""
    sent = [e for e in history if e.status in _TOLD]
    due: list[Due] = []
    cleared = not alarm.condition_active and alarm.state in (AlarmState.RTN_UNACK.value, AlarmState.NORMAL.value)
    if cleared and alarm.cleared_at is not None:
        told = dict.fromkeys(e.receiver for e in sent if not _is_notice(e.reason))
        reason = reasons.cleared(alarm.repeat_count + 1)
        due += [Due(r, reason, alarm.cleared_at) for r in told if _sends_resolved(router, r)]
    if alarm.acked_at is not None:
        asked = dict.fromkeys(e.receiver for e in sent if reasons.called_to_act(e.reason))
        due += [Due(r, reasons.ACKED, alarm.acked_at) for r in asked]
    return due


def _is_notice(reason: str) -> bool:
    return reasons.is_cleared(reason) or reason == reasons.ACKED


def _sends_resolved(router: Router, name: str) -> bool:
    receiver = router.receiver(name)
    return receiver is not None and receiver.send_resolved


def _unique(due: list[Due]) -> list[Due]:
    return list({(d.receiver, d.reason): d for d in reversed(due)}.values())[::-1]


def _nothing() -> None:
    return None


class EscalationScheduler:
    """Records the notifications that are due. Call `run(now)` periodically (the ingest ticker)
    and `run_alarm(id, now)` right after an alarm changed (`AlarmNotifier` does)."""

    def __init__(self, db: StateDatabase, router: Router, nflog: NotificationLog, *, site: str | None = None,
                 lookback: timedelta = DEFAULT_LOOKBACK, wake: Callable[[], None] = _nothing) -> None:
        self._db, self.router, self._log, self._wake = db, router, nflog, wake
        self._site = None if site in (None, "+") else site  # one ingest worker per site, or all
        self._lookback = lookback

    def run(self, now: datetime) -> list[NewEntry]:
        """Open alarms, and alarms raised within the lookback (for `cleared`/`acked` notices)."""
        query = select(Alarm).where(or_(Alarm.state.in_(OPEN_STATES), Alarm.raised_at >= now - self._lookback))
        if self._site is not None:
            query = query.where(Alarm.site == self._site)
        with self._db.session() as session:
            alarms = list(session.scalars(query.order_by(Alarm.id)))
        return self._record(alarms, now)

    def run_alarm(self, alarm_id: int, now: datetime) -> list[NewEntry]:
        with self._db.session() as session:
            alarm = session.get(Alarm, alarm_id)
        return self._record([alarm] if alarm is not None else [], now)

    def _record(self, alarms: list[Alarm], now: datetime) -> list[NewEntry]:
        if not alarms:
            return []
        history = self._log.of_alarms(a.id for a in alarms)
        missing = [entry for alarm in alarms for entry in self._missing(alarm, history[alarm.id], now)]
        inserted = self._log.record(missing, now)
        for entry in inserted:
            log.info("notification due: alarm %s → %s (%s%s)", entry.alarm_id, entry.receiver, entry.reason,
                     ", muted by quiet hours" if entry.muted else "")
        if any(not e.muted for e in inserted):
            self._wake()
        return inserted

    def _missing(self, alarm: Alarm, history: list[Entry], now: datetime) -> list[NewEntry]:
        known = {(e.receiver, e.reason) for e in history}
        entries = []
        for due in plan(alarm, self.router, now, history):
            receiver = self.router.receiver(due.receiver)
            if receiver is not None and (due.receiver, due.reason) not in known:
                entries.append(NewEntry(alarm.id, due.receiver, receiver.channel, due.reason, due.muted))
        return entries
