"""AlarmNotifier: alarm events → notification-log entries, without waiting for the next tick.

Plug it into the alarm service's `publish` (next to the bus publisher). Publishing only queues
the event and wakes the notify worker, so the ingest hot path never waits for the database; the
worker then `drain`s the queue — asking the escalation scheduler about each alarm — before it
sends. A regrade is also told to everyone who was notified about the alarm, or would have been
but for quiet hours (a grade 3 alarm that becomes grade 1 reaches them now).

Everything it records the scheduler would also find by itself on its next run, except regrade
notices: if the process dies with events still queued, the alarms' state still gets notified.
It never raises into the publisher.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime

from alarms.escalation import EscalationScheduler
from alarms.events import AlarmEvent
from alarms.notify import reasons
from alarms.notify.nflog import NewEntry, NotificationLog, Status
from core.clock import Clock
from core.domain import Grade

log = logging.getLogger(__name__)
# Muted receivers are told too: a regrade to an emergency is not held back by quiet hours.
_TOLD = (Status.PENDING, Status.SENT, Status.MUTED)


def _nothing() -> None:
    return None


class AlarmNotifier:
    """A `Publish` callable (alarms.service): queue the event, wake the worker."""

    def __init__(self, scheduler: EscalationScheduler, nflog: NotificationLog, clock: Clock,
                 wake: Callable[[], None] = _nothing) -> None:
        self._scheduler, self._log, self._clock, self._wake = scheduler, nflog, clock, wake
        self._inbox: deque[AlarmEvent] = deque()  # append/popleft are atomic: publishers and the worker share it

    def __call__(self, event: AlarmEvent) -> None:
        self._inbox.append(event)
        self._wake()

    def drain(self, now: datetime | None = None) -> list[NewEntry]:
        """Handle every queued event (the worker calls this before each send)."""
        added: list[NewEntry] = []
        while self._inbox:
            event = self._inbox.popleft()
            try:
                added += self.handle(event, now)
            except Exception:
                log.exception("notifying %s of alarm %s failed; the escalation scheduler will catch up",
                              event.event, event.alarm.get("id"))
        return added

    def handle(self, event: AlarmEvent, now: datetime | None = None) -> list[NewEntry]:
        """Record what one event calls for, now; return the entries this call added."""
        alarm_id, at = int(event.alarm["id"]), now or self._clock.now()
        added = self._log.record(self._regrade_notices(event, at), at) if event.event == "regraded" else []
        return added + self._scheduler.run_alarm(alarm_id, at)

    def _regrade_notices(self, event: AlarmEvent, now: datetime) -> list[NewEntry]:
        router = self._scheduler.router
        alarm_id, grade = int(event.alarm["id"]), Grade(event.alarm["grade"])
        told = {e.receiver: e.channel for e in self._log.entries(alarm_id) if e.status in _TOLD}
        return [NewEntry(alarm_id, name, channel, reasons.regraded(grade), router.muted(name, grade, now))
                for name, channel in told.items()]
