"""Sending due notifications, one log entry at a time, through a list of stages:

    dedup   claim the entry in the log (compare-and-set): skip it if another dispatcher has it
            or it was settled meanwhile, so nothing is sent twice
    route   find the alarm, the receiver and its channel; cancel escalations and reminders of an
            alarm that no longer needs them (acknowledged, cleared, shelved, suppressed); render
    send    hand it to the channel; a failure becomes a retry after exponential backoff, or
            `failed` once attempts run out or the error is permanent
    record  write the outcome to the log

Entries about something other than an alarm (an incident's overdue or failed step, whose
reason is `step-overdue:<run>:<step>`; alarm id 0) are rendered by the renderer registered in
`subjects` under the reason's prefix before `:` (runtime registers playbooks' one), then go
through the same channels, retries and log.

Retries are log entries becoming due again (`next_attempt_at`), never sleeps, so they survive
restarts like everything else. `run(now)` sends what is due and returns the outcomes; the
`NotifyWorker` thread calls it, tests call it with a fake clock. Not for deciding what is due.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from alarms.escalation import escalates, unhandled
from alarms.events import alarm_view
from alarms.notify import reasons
from alarms.notify.channels import Channel, DeliveryError, Outgoing
from alarms.notify.config import Receiver
from alarms.notify.message import Message, render
from alarms.notify.nflog import Entry, NotificationLog, Status
from alarms.routing import Router
from storage.state.database import StateDatabase
from storage.state.models import Alarm

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one log entry in one run."""

    entry_id: int
    alarm_id: int
    receiver: str
    reason: str
    status: Status  # sent, pending (retry at next_attempt_at), failed, cancelled
    attempts: int
    error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass
class Delivery:
    """One log entry on its way through the stages."""

    entry: Entry
    now: datetime
    receiver: Receiver | None = None
    channel: Channel | None = None
    outgoing: Outgoing | None = None
    outcome: Outcome | None = None

    def settle(self, status: Status, error: str | None = None, next_attempt_at: datetime | None = None) -> Delivery:
        e = self.entry
        self.outcome = Outcome(e.id, e.alarm_id, e.receiver, e.reason, status, e.attempts, error, next_attempt_at)
        return self


Stage = Callable[[Delivery], Delivery | None]  # None: stop, nothing to record


@dataclass(frozen=True, slots=True)
class Subject:
    """A non-alarm notification, rendered by its owner: `view` takes the alarm's place in what the
    channels send; `cancelled` says why it is void now (e.g. the step was done meanwhile)."""

    view: Mapping[str, Any]
    message: Message
    cancelled: str | None = None


RenderSubject = Callable[[Entry, datetime], Subject | None]  # None: what it is about no longer exists


class Dispatcher:
    """Sends due entries of the notification log through `stages`."""

    def __init__(self, db: StateDatabase, nflog: NotificationLog, router: Router, channels: Mapping[str, Channel], *,
                 console_url: str | None = None, lease: timedelta | None = None, batch: int = 100) -> None:
        self._db, self._log, self.router, self.channels = db, nflog, router, channels
        self._console_url = console_url or router.config.console_url
        timeout = router.config.delivery.timeout
        self._lease = lease or max(timedelta(minutes=1), 3 * timeout)  # a dead sender's entries come back after it
        self._batch = batch
        self.stages: tuple[Stage, ...] = (self._dedup, self._route, self._send, self._record)
        self.subjects: dict[str, RenderSubject] = {}  # reason prefix (before ":") → renderer

    def run(self, now: datetime) -> list[Outcome]:
        """Send everything due at `now`, a batch at a time; entries it retries are due later."""
        outcomes: list[Outcome] = []
        while True:
            due = self._log.due(now, self._batch)
            outcomes += [outcome for entry in due if (outcome := self._deliver(Delivery(entry, now)))]
            if len(due) < self._batch:
                return outcomes

    def _deliver(self, delivery: Delivery | None) -> Outcome | None:
        for stage in self.stages:
            if delivery is None:
                return None
            delivery = stage(delivery)
        return delivery.outcome if delivery is not None else None

    # --- stages ----------------------------------------------------------------------------------

    def _dedup(self, delivery: Delivery) -> Delivery | None:
        claimed = self._log.claim(delivery.entry, delivery.now, delivery.now + self._lease)
        if claimed is None:
            return None
        delivery.entry = claimed
        return delivery

    def _route(self, delivery: Delivery) -> Delivery:
        entry = delivery.entry
        prefix, colon, _rest = entry.reason.partition(":")
        if colon and prefix in self.subjects:
            return self._route_subject(delivery, self.subjects[prefix])
        with self._db.session() as session:
            alarm = session.get(Alarm, entry.alarm_id)
            if alarm is None:
                return delivery.settle(Status.FAILED, f"alarm {entry.alarm_id} does not exist")
            if reasons.asks_for_response(entry.reason) and not escalates(alarm, delivery.now):
                return delivery.settle(Status.CANCELLED, f"alarm is {alarm.state} and no longer escalates")
            if entry.reason == reasons.HANDLING_OVERDUE and not unhandled(alarm, delivery.now):
                return delivery.settle(Status.CANCELLED, f"alarm is {alarm.state}: handled after all")
            view, timezone = alarm_view(alarm), self.router.timezone(alarm.site)
        message = render(view, entry.reason, timezone=timezone, console_url=self._console_url, now=delivery.now)
        return self._to_channel(delivery, view, message)

    def _route_subject(self, delivery: Delivery, render_subject: RenderSubject) -> Delivery:
        subject = render_subject(delivery.entry, delivery.now)
        if subject is None:
            return delivery.settle(Status.FAILED, f"what {delivery.entry.reason} is about no longer exists")
        if subject.cancelled is not None:
            return delivery.settle(Status.CANCELLED, subject.cancelled)
        return self._to_channel(delivery, subject.view, subject.message)

    def _to_channel(self, delivery: Delivery, view: Mapping[str, Any], message: Message) -> Delivery:
        entry = delivery.entry
        delivery.receiver = self.router.receiver(entry.receiver)
        delivery.channel = self.channels.get(delivery.receiver.channel) if delivery.receiver else None
        if delivery.receiver is None or delivery.channel is None:
            return delivery.settle(Status.FAILED, f"receiver {entry.receiver!r} ({entry.channel}) is not configured")
        delivery.outgoing = Outgoing(entry.id, entry.reason, entry.attempts, view, message)
        return delivery

    def _send(self, delivery: Delivery) -> Delivery:
        if delivery.outcome is not None or delivery.channel is None or delivery.receiver is None:
            return delivery
        assert delivery.outgoing is not None  # set by _route together with the channel
        try:
            delivery.channel.send(delivery.receiver, delivery.outgoing)
        except DeliveryError as exc:
            return self._failed(delivery, str(exc), permanent=exc.permanent)
        except Exception as exc:  # a bug in a channel must not stop the other notifications
            log.exception("channel %s crashed sending notification %s", delivery.receiver.channel, delivery.entry.id)
            return self._failed(delivery, f"{type(exc).__name__}: {exc}", permanent=False)
        return delivery.settle(Status.SENT)

    def _failed(self, delivery: Delivery, error: str, *, permanent: bool) -> Delivery:
        attempts, policy = delivery.entry.attempts, self.router.config.delivery
        if permanent or attempts >= policy.max_attempts:
            return delivery.settle(Status.FAILED, f"attempt {attempts}: {error}")
        return delivery.settle(Status.PENDING, f"attempt {attempts}: {error}", delivery.now + policy.backoff(attempts))

    def _record(self, delivery: Delivery) -> Delivery:
        outcome = delivery.outcome
        if outcome is None:
            return delivery
        if outcome.status is Status.SENT:
            self._log.mark_sent(outcome.entry_id, delivery.now)
        elif outcome.status is Status.PENDING and outcome.next_attempt_at is not None:
            self._log.mark_retry(outcome.entry_id, outcome.next_attempt_at, outcome.error or "")
        elif outcome.status is Status.CANCELLED:
            self._log.mark_cancelled(outcome.entry_id, outcome.error or "")
        else:
            self._log.mark_failed(outcome.entry_id, outcome.error or "")
        _log_outcome(outcome)
        return delivery


def _log_outcome(outcome: Outcome) -> None:
    level = logging.INFO if outcome.status in (Status.SENT, Status.CANCELLED) else logging.WARNING
    log.log(level, "notification %s (alarm %s → %s, %s): %s%s", outcome.entry_id, outcome.alarm_id, outcome.receiver,
            outcome.reason, outcome.status.value, f" — {outcome.error}" if outcome.error else "")
