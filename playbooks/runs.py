"""Playbook runs: a playbook started on an incident, its steps kept in line with the incident.

A run snapshots its playbook (`definition` + sha256), so an edited or reloaded playbook file never
changes an incident that is already running: `playbook_of(run)` reads the snapshot back.

Steps are rows of `run_steps`, one per step that applies to the incident's grade
(`Step.when_grades`). When the incident's grade worsens, steps that now apply are added, and
pending steps that no longer apply are skipped with that reason. Deadlines are the incident's
start plus the step's `deadline`, also for steps added later.

    pending ─┬─► done                       (a person completes it; a decision picks an option)
             ├─► skipped                    (with a reason; by a decision's goto/close; no longer applies)
             └─► in_progress ─► done|failed (command steps: sent, acknowledged, read back)
    awaiting_confirmation ─► in_progress    (grades 1–2: an operator confirms the command)
    failed ─► in_progress                   (the operator confirms a retry) | skipped

An incident may close when every applicable mandatory step (all steps with
`closing.require: all`) is done or skipped. Functions here change rows in the caller's session
and add audit entries; they never commit, publish or send.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from alarms.incidents import CLOSED, OPEN
from playbooks.model import Playbook, Step, StepKind
from storage.state.models import AuditEntry, Incident
from storage.state.playbook_models import PlaybookRun, RunStep

SYSTEM_ACTOR = "system"
RUNNING = "running"
RUN_CLOSED = "closed"


class StepStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def settled(self) -> bool:
        """Done or skipped: nothing more to do for the step."""
        return self in (StepStatus.DONE, StepStatus.SKIPPED)


SETTLED = (StepStatus.DONE.value, StepStatus.SKIPPED.value)
OPEN_STATUSES = tuple(s.value for s in StepStatus if not s.settled)


# --- the snapshot --------------------------------------------------------------------------------

def snapshot(playbook: Playbook) -> tuple[dict[str, Any], str]:
    """The playbook as plain JSON data (durations in seconds) and its sha256."""
    data = _plain(playbook.model_dump(mode="python", exclude_defaults=False))
    assert isinstance(data, dict)
    digest = hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return data, digest


_PLAYBOOKS: dict[str, Playbook] = {}


def playbook_of(run: PlaybookRun) -> Playbook:
    """The playbook a run started with (from its snapshot, cached by hash)."""
    found = _PLAYBOOKS.get(run.playbook_hash)
    if found is None:
        found = _PLAYBOOKS[run.playbook_hash] = Playbook.model_validate(run.definition)
    return found


def _plain(value: object) -> object:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --- starting and following the incident ---------------------------------------------------------

def start(session: Session, incident: Incident, playbook: Playbook, now: datetime, actor: str, *,
          source_alarm_id: int | None = None, source_device: str | None = None) -> PlaybookRun:
    """Start `playbook` on `incident` (which has no run yet) with the steps of its grade."""
    definition, digest = snapshot(playbook)
    run = PlaybookRun(incident_id=incident.id, playbook_key=playbook.key, playbook_version=playbook.version,
                      playbook_hash=digest, definition=definition, grade=incident.grade,
                      source_alarm_id=source_alarm_id, source_device=source_device, state=RUNNING,
                      started_at=now, started_by=actor, updated_at=now)
    session.add(run)
    session.flush()
    _PLAYBOOKS.setdefault(digest, playbook)
    rows = [new_step(run, step, position, incident.opened_at, now)
            for position, step in enumerate(playbook.steps) if step.applies_to(incident.grade)]
    session.add_all(rows)
    session.flush()
    session.add(audit(now, actor, incident.id, "playbook.started", f"playbook {playbook.key} started",
                      {"playbook": playbook.key, "hash": digest, "grade": incident.grade,
                       "steps": [r.step_id for r in rows], "source_alarm_id": source_alarm_id}))
    return run


def new_step(run: PlaybookRun, step: Step, position: int, incident_start: datetime, now: datetime) -> RunStep:
    """A step row: its deadline counts from the incident's start; command steps of grades 1–2
    wait for an operator's confirmation."""
    status = StepStatus.PENDING
    if step.kind is StepKind.COMMAND:
        status = StepStatus.AWAITING_CONFIRMATION if needs_confirmation(run.grade) else StepStatus.PENDING
    return RunStep(run_id=run.id, step_id=step.id, position=position, kind=step.kind.value, role=step.role.value,
                   mandatory=step.mandatory, deadline_at=incident_start + step.deadline, status=status.value,
                   added_at=now, updated_at=now)


def needs_confirmation(grade: int) -> bool:
    """Grades 1–2 (emergencies): a person confirms before fmon commands a device."""
    return grade <= 2


def follow_grade(session: Session, run: PlaybookRun, incident: Incident, now: datetime) -> list[RunStep]:
    """The incident became more severe: add the steps that now apply, skip pending ones that no
    longer do, and make pending commands wait for confirmation. Returns the rows added."""
    if incident.grade >= run.grade:
        return []
    before, run.grade, run.updated_at = run.grade, incident.grade, now
    playbook, rows = playbook_of(run), steps_of(session, run.id)
    have = {r.step_id: r for r in rows}
    added = [new_step(run, step, position, incident.opened_at, now)
             for position, step in enumerate(playbook.steps) if step.id not in have and step.applies_to(run.grade)]
    session.add_all(added)
    for row in rows:
        _adjust_to_grade(row, playbook.step(row.step_id), run.grade, now)
    session.flush()
    session.add(audit(now, SYSTEM_ACTOR, incident.id, "playbook.regraded", f"grade {before} → {run.grade}",
                      {"from": before, "to": run.grade, "added": [r.step_id for r in added]}))
    return added


def _adjust_to_grade(row: RunStep, step: Step, grade: int, now: datetime) -> None:
    if row.status == StepStatus.PENDING.value and not step.applies_to(grade):
        skip(row, SYSTEM_ACTOR, f"不再适用于{grade}级 / no longer applies at grade {grade}", now)
    elif row.status == StepStatus.PENDING.value and step.kind is StepKind.COMMAND and needs_confirmation(grade):
        row.status, row.updated_at = StepStatus.AWAITING_CONFIRMATION.value, now


def reopen(session: Session, run: PlaybookRun, now: datetime) -> None:
    """The incident was reopened (an alarm of it became active again): the run runs again."""
    run.state, run.closed_at, run.closed_by, run.close_reason, run.updated_at = RUNNING, None, None, None, now
    session.add(audit(now, SYSTEM_ACTOR, run.incident_id, "playbook.reopened", "the incident was reopened", {}))


# --- steps ---------------------------------------------------------------------------------------

def steps_of(session: Session, run_id: int) -> list[RunStep]:
    return list(session.scalars(select(RunStep).where(RunStep.run_id == run_id).order_by(RunStep.position)))


def run_of(session: Session, incident_id: int) -> PlaybookRun | None:
    return session.scalars(select(PlaybookRun).where(PlaybookRun.incident_id == incident_id)).one_or_none()


def done(row: RunStep, actor: str, now: datetime, option: str | None = None) -> None:
    row.status, row.done_by, row.done_at, row.updated_at = StepStatus.DONE.value, actor, now, now
    row.option, row.status_reason = option, None


def skip(row: RunStep, actor: str, reason: str, now: datetime) -> None:
    row.status, row.status_reason, row.done_by, row.done_at = StepStatus.SKIPPED.value, reason, actor, now
    row.updated_at = now


def between(playbook: Playbook, rows: Sequence[RunStep], after: str, before: str) -> list[RunStep]:
    """Rows of the steps strictly between step `after` and step `before` in playbook order."""
    order = [s.id for s in playbook.steps]
    low, high = order.index(after), order.index(before)
    return [r for r in rows if low < order.index(r.step_id) < high]


def blocking_close(playbook: Playbook, rows: Iterable[RunStep]) -> list[RunStep]:
    """Steps that keep the incident from closing: applicable, mandatory (or any with
    `closing.require: all`) and neither done nor skipped."""
    everything = playbook.closing.require == "all"
    return [r for r in rows if r.status not in SETTLED and (everything or r.mandatory)]


def close(session: Session, run: PlaybookRun, incident: Incident, actor: str, reason: str, now: datetime,
          rows: Sequence[RunStep]) -> None:
    """Close the run and its incident. Steps still open (optional ones, or all of them when a
    decision closes) are skipped with the closing as their reason."""
    for row in rows:
        if row.status not in SETTLED:
            skip(row, actor, f"事件已关闭 / incident closed: {reason}", now)
    run.state, run.closed_at, run.closed_by, run.close_reason, run.updated_at = RUN_CLOSED, now, actor, reason, now
    incident.state, incident.closed_at, incident.updated_at = CLOSED, now, now
    session.add(audit(now, actor, incident.id, "incident.closed", reason,
                      {"playbook": run.playbook_key, "alarms_cleared_at": _iso(incident.alarms_cleared_at)}))


def is_open(incident: Incident) -> bool:
    return incident.state == OPEN


def audit(now: datetime, actor: str, incident_id: int, action: str, reason: str,
          detail: dict[str, Any]) -> AuditEntry:
    """An audit entry about an incident (its run and steps included)."""
    return AuditEntry(at=now, actor=actor, action=action, entity_type="incident", entity_id=str(incident_id),
                      reason=reason, detail=detail)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
