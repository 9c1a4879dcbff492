"""The playbook scheduler: every tick, what is due by now, computed from the rows.

    answers    device acks (from the command link) and read-backs (from the ingest watcher)
    expire     commands whose ack or read-back deadline passed → failed, their step fails
    send       queued commands → the `CommandSender` (a resend reuses the command id)
    escalate   overdue steps (deadline passed, not done or skipped) and failed steps → the alarm
               notification log (`playbooks.notify`), recorded on the step (`escalated_at`,
               `failure_notified_at`) and in the audit log
    watch      the read-back index rebuilt from the waiting command rows

Nothing here keeps a timer: `run(now)` after a restart finds the same rows and makes the same
decisions; the log's unique key makes each notification happen once (Alertmanager's nflog
idea, as in `alarms.escalation`). The ingest worker calls `run` on its rule tick; tests call it
with a fake clock. Events go to `publish` after each transaction.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from core.domain import MetricValue
from playbooks import commands, runs
from playbooks.commands import Ack, CommandSender, ReadbackWatcher
from playbooks.notify import Place, StepNotifier, failed_reason, overdue_reason
from playbooks.runs import StepStatus
from playbooks.views import IncidentEvent, incident_summary, step_detail
from storage.state.database import StateDatabase
from storage.state.models import Incident
from storage.state.playbook_models import PlaybookRun, RunStep, StepCommand

log = logging.getLogger(__name__)
Publish = Callable[[IncidentEvent], None]


def _nothing(_event: IncidentEvent) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Escalation:
    """A step to escalate: overdue (`attempt` None) or failed (its command's attempt)."""

    incident_id: int
    run_id: int
    row_id: int
    place: Place
    due_at: datetime
    attempt: int | None = None

    @property
    def reason(self) -> str:
        if self.attempt is None:
            return overdue_reason(self.run_id, self.row_id)
        return failed_reason(self.run_id, self.row_id, self.attempt)


class PlaybookScheduler:
    def __init__(self, db: StateDatabase, *, sender: CommandSender | None = None,
                 watcher: ReadbackWatcher | None = None, notifier: StepNotifier | None = None,
                 publish: Publish = _nothing, site: str | None = None) -> None:
        self._db, self._sender, self._notifier, self._publish = db, sender, notifier, publish
        self.watcher = watcher or ReadbackWatcher()
        self._site = None if site in (None, "+") else site  # one ingest worker per site, or all
        self._acks: deque[Ack] = deque()

    def on_ack(self, ack: Ack) -> None:
        """A device answered (any thread; handled on the next run)."""
        self._acks.append(ack)

    def run(self, now: datetime) -> list[IncidentEvent]:
        events = self.answers(now) + self.expire(now)
        self.send(now)
        events += self.escalate(now)
        self.rewatch()
        return events

    # --- answers and timeouts --------------------------------------------------------------------

    def answers(self, now: datetime) -> list[IncidentEvent]:
        acks = [self._acks.popleft() for _ in range(len(self._acks))]
        matched = self.watcher.take()
        if not acks and not matched:
            return []
        with self._db.session() as session:
            touched = [row.run_step_id for ack in acks if (row := _record_ack(session, ack, now)) is not None]
            touched += [row.run_step_id for row_id, values in matched
                        if (row := _record_readback(session, row_id, values, now)) is not None]
            events = _follow(session, touched, now)
        return self._emit(events)

    def expire(self, now: datetime) -> list[IncidentEvent]:
        late = or_(and_(StepCommand.acked_at.is_(None), StepCommand.ack_deadline_at <= now),
                   and_(StepCommand.readback_at.is_(None), StepCommand.readback_deadline_at <= now))
        with self._db.session() as session:
            query = self._scoped(select(StepCommand).where(StepCommand.state.in_(commands.WAITING), late))
            expired = [row for row in session.scalars(query) if commands.expire(row, now)]
            for row in expired:
                log.warning("command %s to %s failed: %s", row.command_id, row.device, row.error)
            events = _follow(session, [row.run_step_id for row in expired], now)
        return self._emit(events)

    # --- sending ---------------------------------------------------------------------------------

    def send(self, now: datetime) -> int:
        if self._sender is None:
            return 0
        with self._db.session() as session:
            queued = list(session.scalars(self._scoped(select(StepCommand).where(
                StepCommand.state == commands.QUEUED)).order_by(StepCommand.id)))
        if not queued:
            return 0
        sent = [row.id for row in queued if self._send_one(row)]
        if sent:
            with self._db.session() as session:
                for row in session.scalars(select(StepCommand).where(StepCommand.id.in_(sent))):
                    _mark_sent(session, row, now)
        return len(sent)

    def _send_one(self, row: StepCommand) -> bool:
        self.watcher.add(row)  # armed first: the device may report before it acknowledges
        if self._sender is not None and self._sender.send(commands.outgoing(row)):
            return True
        self.watcher.discard(row.id)
        return False

    # --- escalation ------------------------------------------------------------------------------

    def escalate(self, now: datetime) -> list[IncidentEvent]:
        with self._db.session() as session:
            due = self._due_escalations(session, now)
        if not due:
            return []
        told = {e.reason: (self._notifier.record(e.reason, e.place, e.due_at, now) if self._notifier else [])
                for e in due}
        with self._db.session() as session:
            events = [event for e in due if (event := _mark_escalated(session, e, told[e.reason], now))]
        return self._emit(events)

    def _due_escalations(self, session: Session, now: datetime) -> list[Escalation]:
        open_steps = RunStep.status.in_(runs.OPEN_STATUSES)
        overdue = and_(RunStep.deadline_at <= now, RunStep.escalated_at.is_(None))
        failed = and_(RunStep.status == StepStatus.FAILED.value, RunStep.failure_notified_at.is_(None))
        query = (select(RunStep, PlaybookRun, Incident).join(PlaybookRun, PlaybookRun.id == RunStep.run_id)
                 .join(Incident, Incident.id == PlaybookRun.incident_id)
                 .where(PlaybookRun.state == runs.RUNNING, open_steps, or_(overdue, failed)).order_by(RunStep.id))
        if self._site is not None:
            query = query.where(Incident.site == self._site)
        found: list[Escalation] = []
        for row, run, incident in session.execute(query).tuples():
            place = Place(incident.site, incident.cause, run.grade)
            if row.escalated_at is None and row.deadline_at <= now:
                found.append(Escalation(incident.id, run.id, row.id, place, row.deadline_at))
            if row.status == StepStatus.FAILED.value and row.failure_notified_at is None:
                found.append(Escalation(incident.id, run.id, row.id, place, now, _attempts(session, row.id)))
        return found

    # --- the read-back index ---------------------------------------------------------------------

    def rewatch(self) -> None:
        with self._db.session() as session:
            query = self._scoped(select(StepCommand).where(StepCommand.state.in_(commands.WAITING),
                                                           StepCommand.readback_at.is_(None)))
            self.watcher.watch(list(session.scalars(query)))

    # --- helpers ---------------------------------------------------------------------------------

    def _scoped(self, query: Select[tuple[StepCommand]]) -> Select[tuple[StepCommand]]:
        if self._site is None:
            return query
        return (query.join(RunStep, RunStep.id == StepCommand.run_step_id)
                .join(PlaybookRun, PlaybookRun.id == RunStep.run_id)
                .join(Incident, Incident.id == PlaybookRun.incident_id).where(Incident.site == self._site))

    def _emit(self, events: Sequence[IncidentEvent]) -> list[IncidentEvent]:
        for event in events:
            try:
                self._publish(event)
            except Exception:  # publishing must never undo what was committed
                log.exception("publishing %s failed", event.event)
        return list(events)


def _record_ack(session: Session, ack: Ack, now: datetime) -> StepCommand | None:
    row = session.scalars(select(StepCommand).where(StepCommand.command_id == ack.command_id)).one_or_none()
    if row is None or row.device != ack.device.key:
        log.info("ack %s from %s is not for a playbook command; ignored", ack.command_id, ack.device.key)
        return None
    first = row.acked_at is None
    commands.record_ack(row, ack, now)
    if first:
        incident_id, step_id = _owner(session, row)
        action = "command.acked" if ack.status == "done" else "command.rejected"
        session.add(runs.audit(now, runs.SYSTEM_ACTOR, incident_id, action, ack.reason or ack.status,
                               {"step": step_id, "command_id": row.command_id, "device": row.device,
                                "command": row.name, "status": ack.status}))
    return row


def _record_readback(session: Session, row_id: int, values: Mapping[str, MetricValue],
                     now: datetime) -> StepCommand | None:
    row = session.get(StepCommand, row_id)
    if row is None or row.readback_at is not None or row.state not in commands.WAITING:
        return None
    commands.record_readback(row, values, now)
    incident_id, step_id = _owner(session, row)
    session.add(runs.audit(now, runs.SYSTEM_ACTOR, incident_id, "command.read_back",
                           ", ".join(f"{k}={v}" for k, v in values.items()),
                           {"step": step_id, "command_id": row.command_id, "device": row.device,
                            "values": dict(values)}))
    return row


def _mark_sent(session: Session, row: StepCommand, now: datetime) -> None:
    if row.state != commands.QUEUED:
        return
    row.state, row.sent_at = commands.SENT, now
    incident_id, step_id = _owner(session, row)
    session.add(runs.audit(now, runs.SYSTEM_ACTOR, incident_id, "command.sent", f"{row.name} → {row.device}",
                           {"step": step_id, "command_id": row.command_id, "device": row.device,
                            "command": row.name, "params": row.params}))


def _follow(session: Session, step_ids: Iterable[int], now: datetime) -> list[IncidentEvent]:
    """Steps follow their commands; returns the events of the steps that changed."""
    events = []
    for row_id in dict.fromkeys(step_ids):
        row = session.get(RunStep, row_id)
        if row is None:
            continue
        rows = list(session.scalars(select(StepCommand).where(StepCommand.run_step_id == row_id,
                                                              StepCommand.state != commands.CANCELLED)
                                    .order_by(StepCommand.id)))
        current = [c for c in rows if c.attempt == max(r.attempt for r in rows)] if rows else []
        if commands.follow_commands(row, current, now):
            run = session.get(PlaybookRun, row.run_id)
            assert run is not None
            action = "step.done" if row.status == StepStatus.DONE.value else "step.failed"
            session.add(runs.audit(now, runs.SYSTEM_ACTOR, run.incident_id, action, row.status_reason or "",
                                   {"step": row.step_id}))
            session.flush()
            commands.queue_due(session, run, now)  # the next command step's turn may have come
            session.flush()
            events.append(_step_event(session, run, row, now))
    return events


def _mark_escalated(session: Session, escalation: Escalation, receivers: list[str],
                    now: datetime) -> IncidentEvent | None:
    row, run = session.get(RunStep, escalation.row_id), session.get(PlaybookRun, escalation.run_id)
    if row is None or run is None:
        return None
    overdue = escalation.attempt is None
    if (row.escalated_at if overdue else row.failure_notified_at) is not None:
        return None  # another worker got there first
    if overdue:
        row.escalated_at = now
    else:
        row.failure_notified_at = now
    why = "overdue" if overdue else "failed"
    session.add(runs.audit(now, runs.SYSTEM_ACTOR, run.incident_id, "step.escalated",
                           f"step {row.step_id} {why}: {', '.join(receivers) or 'no receiver configured'}",
                           {"step": row.step_id, "why": why, "reason": escalation.reason, "receivers": receivers,
                            "deadline_at": row.deadline_at.isoformat()}))
    session.flush()
    return _step_event(session, run, row, now)


def _step_event(session: Session, run: PlaybookRun, row: RunStep, now: datetime) -> IncidentEvent:
    incident = session.get(Incident, run.incident_id)
    assert incident is not None
    return IncidentEvent("step.updated", incident_summary(session, incident, now), step_detail(session, run, row, now))


def _owner(session: Session, row: StepCommand) -> tuple[int, str]:
    """The incident and the step id of a command row."""
    query = (select(PlaybookRun.incident_id, RunStep.step_id).join(RunStep, RunStep.run_id == PlaybookRun.id)
             .where(RunStep.id == row.run_step_id))
    incident_id, step_id = session.execute(query).one()
    return incident_id, step_id


def _attempts(session: Session, row_id: int) -> int:
    """How many times the step's command was queued (0: it never was, e.g. no device to command)."""
    return session.scalar(select(func.max(StepCommand.attempt)).where(StepCommand.run_step_id == row_id)) or 0
