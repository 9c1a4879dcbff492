"""The public JSON shapes of incidents with their playbook runs, and the incident events.

    incident_summary  an incident in lists and events: `alarms.incidents.incident_view` + a run summary
    incident_detail   one incident: its alarms, history, and the run with every step, command, evidence
    list_incidents    a filtered page (state, site, playbook, grade, opened from/to)

Events (`IncidentEvent`) go on the internal bus after commit, like alarm events:
`incident.opened`, `incident.updated`, `incident.closed`, `step.updated`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.orm import Session

from alarms.incidents import OPEN, incident_view
from alarms.incidents import incident_detail as alarms_detail
from core.errors import NotFound
from playbooks import runs
from playbooks.model import Playbook, Role, Step
from storage.state.models import Incident
from storage.state.playbook_models import PlaybookRun, RunStep, StepCommand, StepEvidence


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """Something happened to an incident or one of its steps (published after commit)."""

    event: str
    incident: dict[str, Any]
    step: dict[str, Any] | None = None

    def as_message(self) -> dict[str, Any]:
        message = {"type": "incident", "event": self.event, "incident": self.incident}
        return message if self.step is None else {**message, "step": self.step}


@dataclass(frozen=True, slots=True)
class Filters:
    state: str | None = None
    site: str | None = None
    playbook: str | None = None
    grades: tuple[int, ...] = ()
    opened_from: datetime | None = None
    opened_to: datetime | None = None
    limit: int = 100
    offset: int = 0


def incident_summary(session: Session, incident: Incident, now: datetime) -> dict[str, Any]:
    run = runs.run_of(session, incident.id)
    view = incident_view(incident)
    if run is None:
        return {**view, "run": None}
    rows = runs.steps_of(session, run.id)
    return {**view, "run": _run_summary(run, rows, now)}


def _run_summary(run: PlaybookRun, rows: Sequence[RunStep], now: datetime) -> dict[str, Any]:
    playbook = runs.playbook_of(run)
    return {
        "id": run.id, "playbook": run.playbook_key, "title_zh": playbook.title.zh, "title_en": playbook.title.en,
        "playbook_hash": run.playbook_hash, "state": run.state, "grade": run.grade,
        "started_at": iso(run.started_at), "started_by": run.started_by, "closed_at": iso(run.closed_at),
        "closed_by": run.closed_by, "close_reason": run.close_reason,
        "steps": len(rows), "open_steps": sum(r.status not in runs.SETTLED for r in rows),
        "overdue_steps": sum(overdue(r, now) for r in rows),
        "blocking_close": [r.step_id for r in runs.blocking_close(playbook, rows)],
        "version": run.version,
    }


def incident_detail(session: Session, incident_id: int, now: datetime) -> dict[str, Any]:
    """One incident: alarms, history, and its run with every step (commands and evidence included)."""
    detail = alarms_detail(session, incident_id)
    run = runs.run_of(session, incident_id)
    if run is None:
        return {**detail, "run": None}
    rows = runs.steps_of(session, run.id)
    commands, evidence = _commands_and_evidence(session, [r.id for r in rows])
    playbook = runs.playbook_of(run)
    steps = [step_view(r, playbook.step(r.step_id), commands.get(r.id, []), evidence.get(r.id, []), now)
             for r in rows]
    return {**detail, "run": {**_run_summary(run, rows, now), "source_alarm_id": run.source_alarm_id,
                              "source_device": run.source_device, "steps": steps}}


def step_detail(session: Session, run: PlaybookRun, row: RunStep, now: datetime) -> dict[str, Any]:
    commands, evidence = _commands_and_evidence(session, [row.id])
    return step_view(row, runs.playbook_of(run).step(row.step_id), commands.get(row.id, []),
                     evidence.get(row.id, []), now)


def _commands_and_evidence(session: Session, row_ids: list[int]) -> tuple[dict[int, list[StepCommand]],
                                                                          dict[int, list[StepEvidence]]]:
    commands: dict[int, list[StepCommand]] = {}
    evidence: dict[int, list[StepEvidence]] = {}
    if row_ids:
        for command in session.scalars(select(StepCommand).where(StepCommand.run_step_id.in_(row_ids))
                                       .order_by(StepCommand.id)):
            commands.setdefault(command.run_step_id, []).append(command)
        for item in session.scalars(select(StepEvidence).where(StepEvidence.run_step_id.in_(row_ids))
                                    .order_by(StepEvidence.id)):
            evidence.setdefault(item.run_step_id, []).append(item)
    return commands, evidence


def step_view(row: RunStep, step: Step, commands: Sequence[StepCommand], evidence: Sequence[StepEvidence],
              now: datetime) -> dict[str, Any]:
    role = Role(row.role)
    return {
        "step_id": row.step_id, "position": row.position, "kind": row.kind, "role": row.role,
        "role_zh": role.label_zh, "role_en": role.label_en, "external": role.external,
        "title_zh": step.title.zh, "title_en": step.title.en,
        "detail_zh": step.detail.zh if step.detail else None, "detail_en": step.detail.en if step.detail else None,
        "source": step.source, "mandatory": row.mandatory, "assignee": row.assignee,
        "deadline_at": iso(row.deadline_at), "overdue": overdue(row, now), "status": row.status,
        "status_reason": row.status_reason, "option": row.option, "added_at": iso(row.added_at),
        "started_at": iso(row.started_at), "confirmed_by": row.confirmed_by, "confirmed_at": iso(row.confirmed_at),
        "done_by": row.done_by, "done_at": iso(row.done_at), "escalated_at": iso(row.escalated_at),
        "options": [{"id": o.id, "label_zh": o.label.zh, "label_en": o.label.en, "then": o.then, "goto": o.goto}
                    for o in step.options],
        "command": None if step.command is None else {
            "name": step.command.name, "target": step.command.target, "family": step.command.family,
            "params": dict(step.command.params), "expect": dict(step.command.expect)},
        "commands": [command_view(c) for c in commands],
        "evidence": [{"at": iso(e.at), "by": e.actor, "text": e.text, "photo_url": e.photo_url} for e in evidence],
        "version": row.version,
    }


def command_view(command: StepCommand) -> dict[str, Any]:
    return {
        "command_id": command.command_id, "device": command.device, "name": command.name,
        "params": command.params, "expect": command.expect, "state": command.state,
        "queued_at": iso(command.queued_at), "sent_at": iso(command.sent_at),
        "ack_deadline_at": iso(command.ack_deadline_at), "readback_deadline_at": iso(command.readback_deadline_at),
        "acked_at": iso(command.acked_at), "ack_status": command.ack_status, "ack_reason": command.ack_reason,
        "readback_at": iso(command.readback_at), "readback_value": command.readback_value, "error": command.error,
    }


def overdue(row: RunStep, now: datetime) -> bool:
    return row.status not in runs.SETTLED and row.deadline_at <= now


def list_incidents(session: Session, filters: Filters, now: datetime) -> dict[str, Any]:
    """A page of incidents, open ones first, then the most severe, then the newest."""
    query = select(Incident).outerjoin(PlaybookRun, PlaybookRun.incident_id == Incident.id)
    for condition in _conditions(filters):
        query = query.where(condition)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = (case((Incident.state == OPEN, 0), else_=1), Incident.grade, Incident.opened_at.desc(), Incident.id.desc())
    page = session.scalars(query.order_by(*order).limit(filters.limit).offset(filters.offset)).all()
    found = session.scalars(select(PlaybookRun).where(PlaybookRun.incident_id.in_([i.id for i in page]))).all()
    by_incident = {run.incident_id: run for run in found}
    steps: dict[int, list[RunStep]] = {run.id: [] for run in found}
    for row in session.scalars(select(RunStep).where(RunStep.run_id.in_(list(steps))).order_by(RunStep.position)):
        steps[row.run_id].append(row)
    items = [{**incident_view(i), "run": None if (run := by_incident.get(i.id)) is None
              else _run_summary(run, steps[run.id], now)} for i in page]
    return {"items": items, "total": total}


def _conditions(filters: Filters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.state is not None:
        conditions.append(Incident.state == filters.state)
    if filters.site is not None:
        conditions.append(Incident.site == filters.site)
    if filters.playbook is not None:
        conditions.append(or_(PlaybookRun.playbook_key == filters.playbook,
                              (PlaybookRun.id.is_(None)) & (Incident.playbook == filters.playbook)))
    if filters.grades:
        conditions.append(Incident.grade.in_(filters.grades))
    if filters.opened_from is not None:
        conditions.append(Incident.opened_at >= filters.opened_from)
    if filters.opened_to is not None:
        conditions.append(Incident.opened_at < filters.opened_to)
    return conditions


def playbook_view(playbook: Playbook) -> dict[str, Any]:
    return {"key": playbook.key, "title_zh": playbook.title.zh, "title_en": playbook.title.en,
            "triggers": [{"category": t.category, "grades": list(t.grades)} for t in playbook.triggers]}


def require_incident(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    return incident


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
