"""The playbook stage of the alarm service: incidents that open start their playbook.

Runs in the alarm's transaction after incident grouping (`alarms.incidents.IncidentGrouper`), so
an incident and its run are committed together: an incident is never seen without the run it
should have, and its alarms clearing cannot close it first. For each alarm change of an incident:

- no run yet, incident open, the alarm was raised: the playbook for the alarm's category, the
  incident's grade and the rule's `playbook` key is selected (`Select`, from the library) and
  started; at grades 3–4 a command step whose turn it is is queued (`commands.queue_due`; 1–2
  wait for an operator's confirmation);
- a run: it follows the incident — more severe grade → more steps; reopened incident → the run
  runs again.

The touched incidents go to an `IncidentOutbox`; the runtime drains it after the alarm service
committed and publishes the incident events. Not for operator actions (`playbooks.actions`) or
timers (`playbooks.scheduler`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from alarms.incidents import CLOSED, OPEN
from core.domain import AlarmState, Family
from playbooks import commands, runs
from playbooks.model import Playbook
from playbooks.views import IncidentEvent, incident_summary
from rules.model import ChangeKind, ConditionChange
from storage.state.database import StateDatabase
from storage.state.models import Alarm, Incident
from storage.state.playbook_models import PlaybookRun

Select = Callable[[str, int, str | None], Playbook | None]  # (category, grade, the rule's playbook key)
FAMILIES = frozenset(f.value for f in Family)


class IncidentOutbox:
    """Incidents changed inside transactions, to publish once those committed. Thread-safe; an
    entry of a transaction that rolled back is published with the incident as it is (harmless)."""

    def __init__(self) -> None:
        self._pending: dict[int, str] = {}
        self._lock = threading.Lock()

    def add(self, incident_id: int, event: str) -> None:
        with self._lock:
            if self._pending.get(incident_id) not in ("incident.opened", "incident.closed"):
                self._pending[incident_id] = event

    def drain(self, db: StateDatabase, now: datetime) -> list[IncidentEvent]:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return []
        with db.session() as session:
            return [IncidentEvent(event, incident_summary(session, incident, now))
                    for incident_id, event in pending.items()
                    if (incident := session.get(Incident, incident_id)) is not None]


class PlaybookStage:
    """An `alarms.service.Stage`: start and follow playbook runs in the alarm's transaction."""

    def __init__(self, select: Select, outbox: IncidentOutbox) -> None:
        self._select, self._outbox = select, outbox

    def __call__(self, session: Session, alarm: Alarm, change: ConditionChange, now: datetime) -> Sequence[Alarm]:
        if alarm.incident_id is None:
            return []
        incident = session.get(Incident, alarm.incident_id)
        if incident is None:
            return []
        session.refresh(incident)  # the grouper updated it with a bulk UPDATE
        run = runs.run_of(session, incident.id)
        raised = change.kind is ChangeKind.RAISE and alarm.state != AlarmState.NORMAL.value
        if run is None and raised and incident.state == OPEN:
            self._start(session, incident, alarm, change, now)
        elif run is not None:
            follow(session, run, incident, now)
        self._outbox.add(incident.id, _event(incident, alarm, change, now))
        return []

    def _start(self, session: Session, incident: Incident, alarm: Alarm, change: ConditionChange,
               now: datetime) -> None:
        playbook = self._select(alarm.category, incident.grade, change.rule.playbook)
        if playbook is None:
            return
        device = f"{alarm.site}/{alarm.family}/{alarm.device_id}" if alarm.family in FAMILIES else None
        run = runs.start(session, incident, playbook, now, runs.SYSTEM_ACTOR, source_alarm_id=alarm.id,
                         source_device=device)
        commands.queue_due(session, run, now)


def follow(session: Session, run: PlaybookRun, incident: Incident, now: datetime) -> None:
    """Keep a run in line with its incident: reopened, or more severe."""
    if run.state == runs.RUN_CLOSED and incident.state == OPEN:
        runs.reopen(session, run, now)
    if incident.grade < run.grade:
        runs.follow_grade(session, run, incident, now)
        commands.queue_due(session, run, now)


def _event(incident: Incident, alarm: Alarm, change: ConditionChange, now: datetime) -> str:
    first = incident.alarm_count == 1 and alarm.repeat_count == 0 and incident.opened_at == alarm.raised_at
    if change.kind is ChangeKind.RAISE and first:  # not an incident an operator opened before its first alarm
        return "incident.opened"
    if incident.state == CLOSED and incident.closed_at == now:
        return "incident.closed"
    return "incident.updated"
