"""What people do to incidents: start one with a playbook, complete, skip, assign and comment on
steps, close it.

Each action is one transaction: load, check (the step's `version` when given: two operators
cannot both complete one step), change, audit who/when/why, commit, then publish the event.
Bad requests raise `InvalidRequest` (→ 422), actions the state does not allow `Conflict`
(→ 409, naming the steps that are still open when a close is refused), unknown ids `NotFound`.

    complete  manual / notify: done. decision: `option` (continue, goto → the steps in between are
              skipped, close → the incident closes with `reason`). command: `confirm` queues the
              command (grades 1–2 wait for it; a failed command is retried the same way); the
              step is then done by the device's ack and read-back (playbooks.commands).
    skip      `reason` required; a command in flight is cancelled.
    assign    `assignee`; a pending manual step is then in progress.
    comment   `text` and an optional `photo_url` (http/https): evidence, any time.
    close     `reason`; refused while applicable mandatory steps are open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from alarms.incidents import OPEN, SCOPES, titles
from alarms.lifecycle import InvalidRequest
from core.clock import Clock
from core.domain import DeviceRef, Family
from core.errors import Conflict, NotFound
from playbooks import commands, runs
from playbooks.model import Playbook, Step, StepKind
from playbooks.runs import StepStatus
from playbooks.views import IncidentEvent, incident_detail, incident_summary, step_detail
from storage.state.database import StateDatabase
from storage.state.models import Incident
from storage.state.playbook_models import PlaybookRun, RunStep, StepCommand, StepEvidence

Publish = Callable[[IncidentEvent], None]
MAX_TEXT = 2000


class StepsStillOpen(Conflict):
    """The incident cannot close: these mandatory steps are neither done nor skipped."""

    def __init__(self, incident_id: int, steps: Sequence[RunStep]) -> None:
        self.steps = [s.step_id for s in steps]
        listed = ", ".join(f"{s.step_id} ({s.status})" for s in steps)
        super().__init__(f"incident {incident_id} cannot close: mandatory steps still open: {listed}")


@dataclass(frozen=True, slots=True)
class StartRequest:
    """An operator starts a playbook where no alarm did (a phone call, a patrol's report)."""

    playbook: str
    site: str
    grade: int
    building: str | None = None
    zone: str | None = None
    device: str | None = None  # family/device_id: the target of `target: source` commands
    note: str = ""


@dataclass
class _Loaded:
    incident: Incident
    run: PlaybookRun
    row: RunStep
    step: Step


class IncidentActions:
    def __init__(self, db: StateDatabase, clock: Clock, library: Sequence[Playbook], publish: Publish) -> None:
        self._db, self._clock, self._publish = db, clock, publish
        self._library = {p.key: p for p in library}

    # --- starting --------------------------------------------------------------------------------

    def start(self, actor: str, request: StartRequest) -> dict[str, Any]:
        """Open an incident (or take the open one of that place and cause that has no run yet)
        and start the playbook on it."""
        playbook = self._playbook(request.playbook)
        device = _source_device(request)
        now = self._clock.now()
        with self._db.session() as session:
            incident = _incident_for(session, playbook, request, actor, now)
            run = runs.start(session, incident, playbook, now, actor, source_device=device)
            commands.queue_due(session, run, now)
            session.flush()
            detail = incident_detail(session, incident.id, now)
            event = IncidentEvent("incident.opened", incident_summary(session, incident, now))
        self._publish(event)
        return detail

    def _playbook(self, key: str) -> Playbook:
        found = self._library.get(key)
        if found is None:
            known = ", ".join(sorted(self._library)) or "none loaded"
            raise InvalidRequest(f"no playbook {key!r} (known: {known})")
        return found

    # --- steps -----------------------------------------------------------------------------------

    def complete(self, incident_id: int, step_id: str, actor: str, *, option: str | None = None,
                 confirm: bool = False, reason: str = "", version: int | None = None) -> dict[str, Any]:
        def act(session: Session, loaded: _Loaded, now: datetime) -> list[str]:
            return _complete(session, loaded, actor, option, confirm, reason.strip(), now)

        return self._step_action(incident_id, step_id, version, act)

    def skip(self, incident_id: int, step_id: str, actor: str, reason: str,
             version: int | None = None) -> dict[str, Any]:
        def act(session: Session, loaded: _Loaded, now: datetime) -> list[str]:
            _need_text(reason, "a skip needs a reason")
            _must_be_open(loaded.row)
            _cancel_commands(session, loaded.row, "步骤已跳过 / step skipped", now)
            runs.skip(loaded.row, actor, reason.strip(), now)
            session.add(runs.audit(now, actor, loaded.incident.id, "step.skipped", reason.strip(),
                                   {"step": loaded.row.step_id}))
            return ["step.updated"]

        return self._step_action(incident_id, step_id, version, act)

    def assign(self, incident_id: int, step_id: str, actor: str, assignee: str,
               version: int | None = None) -> dict[str, Any]:
        def act(session: Session, loaded: _Loaded, now: datetime) -> list[str]:
            _need_text(assignee, "assign needs an assignee")
            row = loaded.row
            _must_be_open(row)
            before, row.assignee, row.updated_at = row.assignee, assignee.strip(), now
            if row.status == StepStatus.PENDING.value and row.kind != StepKind.COMMAND.value:
                row.status, row.started_at = StepStatus.IN_PROGRESS.value, now
            session.add(runs.audit(now, actor, loaded.incident.id, "step.assigned", f"assigned to {row.assignee}",
                                   {"step": row.step_id, "from": before, "to": row.assignee}))
            return ["step.updated"]

        return self._step_action(incident_id, step_id, version, act, need_running=False)

    def comment(self, incident_id: int, step_id: str, actor: str, text: str,
                photo_url: str | None = None) -> dict[str, Any]:
        def act(session: Session, loaded: _Loaded, now: datetime) -> list[str]:
            _need_text(text, "a comment needs text")
            _add_evidence(session, loaded, actor, text.strip(), photo_url, now)
            return ["step.updated"]

        return self._step_action(incident_id, step_id, None, act, need_running=False)

    # --- closing ---------------------------------------------------------------------------------

    def close(self, incident_id: int, actor: str, reason: str, version: int | None = None) -> dict[str, Any]:
        _need_text(reason, "closing an incident needs a reason")
        now = self._clock.now()
        try:
            with self._db.session() as session:
                incident, run = _running(session, incident_id, version)
                rows = runs.steps_of(session, run.id)
                blocking = runs.blocking_close(runs.playbook_of(run), rows)
                if blocking:
                    raise StepsStillOpen(incident_id, blocking)
                runs.close(session, run, incident, actor, reason.strip(), now, rows)
                session.flush()
                detail = incident_detail(session, incident_id, now)
                event = IncidentEvent("incident.closed", incident_summary(session, incident, now))
        except StaleDataError:
            raise Conflict(f"incident {incident_id} was changed by someone else at the same time: reload it") from None
        self._publish(event)
        return detail

    # --- the transaction around a step action ----------------------------------------------------

    def _step_action(self, incident_id: int, step_id: str, version: int | None,
                     act: Callable[[Session, _Loaded, datetime], list[str]],
                     need_running: bool = True) -> dict[str, Any]:
        now = self._clock.now()
        try:
            with self._db.session() as session:
                loaded = _load(session, incident_id, step_id, need_running)
                if version is not None and loaded.row.version != version:
                    raise Conflict(f"step {step_id} changed (version {loaded.row.version}, not {version}): reload it")
                events = act(session, loaded, now)
                session.flush()
                commands.queue_due(session, loaded.run, now)  # a command step whose turn came
                session.flush()
                step = step_detail(session, loaded.run, loaded.row, now)
                summary = incident_summary(session, loaded.incident, now)
        except StaleDataError:
            raise Conflict(f"step {step_id} was changed by someone else at the same time: reload it") from None
        for name in events:
            self._publish(IncidentEvent(name, summary, step if name == "step.updated" else None))
        return {"incident": summary, "step": step}


# --- completing a step ---------------------------------------------------------------------------

def _complete(session: Session, loaded: _Loaded, actor: str, option: str | None, confirm: bool, reason: str,
              now: datetime) -> list[str]:
    row, step = loaded.row, loaded.step
    if option is not None and step.kind is not StepKind.DECISION:
        raise InvalidRequest(f"step {row.step_id} is not a decision: it takes no option")
    if confirm and step.kind is not StepKind.COMMAND:
        raise InvalidRequest(f"step {row.step_id} sends no command: there is nothing to confirm")
    if step.kind is StepKind.DECISION:
        return _decide(session, loaded, actor, option, reason, now)
    if step.kind is StepKind.COMMAND:
        return _confirm_command(session, loaded, actor, confirm, now)
    _must_be_open(row)
    runs.done(row, actor, now)
    session.add(runs.audit(now, actor, loaded.incident.id, "step.done", reason, {"step": row.step_id}))
    if reason:
        _add_evidence(session, loaded, actor, reason, None, now, audited=False)
    return ["step.updated"]


def _decide(session: Session, loaded: _Loaded, actor: str, option_id: str | None, reason: str,
            now: datetime) -> list[str]:
    row, step = loaded.row, loaded.step
    _must_be_open(row)
    options = {o.id: o for o in step.options}
    if option_id is None or option_id not in options:
        raise InvalidRequest(f"decision {row.step_id} needs an option: one of {', '.join(options)}")
    option = options[option_id]
    if option.then == "close":
        _need_text(reason, f"option {option_id} closes the incident: give the reason")
    runs.done(row, actor, now, option=option_id)
    label = f"{option.label.zh} / {option.label.en}"
    session.add(runs.audit(now, actor, loaded.incident.id, "step.decided", reason or label,
                           {"step": row.step_id, "option": option_id, "then": option.then, "goto": option.goto}))
    if option.then == "goto" and option.goto is not None:
        _skip_to(session, loaded, actor, option.goto, label, now)
    elif option.then == "close":
        rows = runs.steps_of(session, loaded.run.id)
        for other in rows:
            _cancel_commands(session, other, "事件已关闭 / incident closed", now)
        runs.close(session, loaded.run, loaded.incident, actor, reason, now, rows)
        return ["step.updated", "incident.closed"]
    return ["step.updated"]


def _skip_to(session: Session, loaded: _Loaded, actor: str, target: str, label: str, now: datetime) -> None:
    playbook = runs.playbook_of(loaded.run)
    rows = runs.steps_of(session, loaded.run.id)
    why = f"由决策 {loaded.row.step_id} 跳过（{label}）/ skipped by decision {loaded.row.step_id}"
    for other in runs.between(playbook, rows, loaded.row.step_id, target):
        if other.status not in runs.SETTLED:
            _cancel_commands(session, other, why, now)
            runs.skip(other, actor, why, now)
            session.add(runs.audit(now, actor, loaded.incident.id, "step.skipped", why,
                                   {"step": other.step_id, "by_decision": loaded.row.step_id}))


def _confirm_command(session: Session, loaded: _Loaded, actor: str, confirm: bool, now: datetime) -> list[str]:
    row, step = loaded.row, loaded.step
    assert step.command is not None
    if row.status == StepStatus.IN_PROGRESS.value:
        raise Conflict(f"step {row.step_id}: {step.command.name} was sent; waiting for the device's answer")
    _must_be_open(row)
    if not confirm:
        raise InvalidRequest(f"step {row.step_id} sends {step.command.name} to a device: "
                             "confirm it with confirm=true")
    retry = row.status == StepStatus.FAILED.value
    row.confirmed_by, row.confirmed_at = actor, now
    session.add(runs.audit(now, actor, loaded.incident.id, "step.confirmed",
                           f"{'retry of ' if retry else ''}{step.command.name} confirmed",
                           {"step": row.step_id, "command": step.command.name, "retry": retry}))
    commands.queue(session, loaded.run, row, step, actor, now)
    return ["step.updated"]


# --- helpers -------------------------------------------------------------------------------------

def _load(session: Session, incident_id: int, step_id: str, need_running: bool) -> _Loaded:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    run = runs.run_of(session, incident_id)
    if run is None:
        raise NotFound(f"incident {incident_id} has no playbook run")
    if need_running and run.state != runs.RUNNING:
        raise Conflict(f"incident {incident_id} is closed: its steps cannot change")
    row = session.scalars(select(RunStep).where(RunStep.run_id == run.id, RunStep.step_id == step_id)).one_or_none()
    if row is None:
        raise NotFound(f"incident {incident_id} has no step {step_id!r}")
    return _Loaded(incident, run, row, runs.playbook_of(run).step(step_id))


def _running(session: Session, incident_id: int, version: int | None) -> tuple[Incident, PlaybookRun]:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    if version is not None and incident.version != version:
        raise Conflict(f"incident {incident_id} changed (version {incident.version}, not {version}): reload it")
    run = runs.run_of(session, incident_id)
    if run is None:
        raise Conflict(f"incident {incident_id} has no playbook run: it closes when its alarms are normal")
    if run.state != runs.RUNNING or incident.state != OPEN:
        raise Conflict(f"incident {incident_id} is already closed")
    return incident, run


def _must_be_open(row: RunStep) -> None:
    if row.status in runs.SETTLED:
        raise Conflict(f"step {row.step_id} is already {row.status}")


def _need_text(text: str | None, message: str) -> None:
    if text is None or not text.strip():
        raise InvalidRequest(message)
    if len(text) > MAX_TEXT:
        raise InvalidRequest(f"text longer than {MAX_TEXT} characters")


def _add_evidence(session: Session, loaded: _Loaded, actor: str, text: str, photo_url: str | None,
                  now: datetime, audited: bool = True) -> None:
    if photo_url is not None and not photo_url.startswith(("http://", "https://")):
        raise InvalidRequest("photo_url must be an http:// or https:// link")
    session.add(StepEvidence(run_step_id=loaded.row.id, at=now, actor=actor, text=text, photo_url=photo_url))
    if audited:
        session.add(runs.audit(now, actor, loaded.incident.id, "step.comment", text,
                               {"step": loaded.row.step_id, "photo_url": photo_url}))


def _cancel_commands(session: Session, row: RunStep, why: str, now: datetime) -> None:
    waiting = session.scalars(select(StepCommand).where(StepCommand.run_step_id == row.id,
                                                        StepCommand.state.in_(commands.WAITING)))
    for command in waiting:
        command.state, command.error = commands.CANCELLED, why
    row.updated_at = now


def _source_device(request: StartRequest) -> str | None:
    if request.device is None:
        return None
    family, _, device_id = request.device.partition("/")
    try:
        return DeviceRef(request.site, Family(family), device_id).key
    except ValueError:
        raise InvalidRequest(f"device {request.device!r} is not family/device_id "
                             f"(families: {', '.join(f.value for f in Family)})") from None


def _incident_for(session: Session, playbook: Playbook, request: StartRequest, actor: str,
                  now: datetime) -> Incident:
    cause = playbook.triggers[0].category
    building, zone = _place(cause, request)
    query = select(Incident).where(Incident.site == request.site, Incident.cause == cause, Incident.state == OPEN,
                                   _same(Incident.building, building), _same(Incident.zone, zone))
    incident = session.scalars(query.order_by(Incident.id).limit(1)).first()
    if incident is not None:
        if runs.run_of(session, incident.id) is not None:
            raise Conflict(f"incident {incident.id} is already open here with a playbook: work on that one")
        incident.grade, incident.updated_at = min(incident.grade, request.grade), now
        session.add(runs.audit(now, actor, incident.id, "incident.taken", request.note or "playbook started by hand",
                               {"playbook": playbook.key, "grade": request.grade}))
        return incident
    title_zh, title_en = titles(cause, request.site, (building, zone))
    incident = Incident(site=request.site, building=building, zone=zone, cause=cause, playbook=playbook.key,
                        state=OPEN, grade=request.grade, title_zh=title_zh, title_en=title_en, alarm_count=0,
                        opened_at=now, updated_at=now)
    session.add(incident)
    session.flush()
    session.add(runs.audit(now, actor, incident.id, "incident.opened", request.note or "opened by hand",
                           {"playbook": playbook.key, "grade": request.grade, "by_hand": True}))
    return incident


def _place(cause: str, request: StartRequest) -> tuple[str | None, str | None]:
    scope = SCOPES.get(cause)
    if scope == "site":
        return None, None
    return (request.building, None) if scope == "building" else (request.building, request.zone)


def _same(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value
