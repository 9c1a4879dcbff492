"""The incident report: what happened, who did what, and whether the clocks were met.

`build(session, incident_id, now)` gathers the facts from the state database (incident, run,
steps, commands, evidence, alarms, audit log); `markdown(report)` and `html(report)` render them
with Jinja2 (HTML autoescaped), headings in both languages, times in the site's local time.

- **Timeline**: every audit entry of the incident (its run, steps, commands, escalations,
  comments) and of its alarms (raised, acknowledged, cleared…), in time order.
- **SLA**: the grade's response clocks (DESIGN.md §4: grades 1–2 respond within 5 min and handle
  within 30 min, grades 3–4 15 min / 4 h; a site's notify.yaml may override them): response =
  the first action of a person on the incident or its alarms, handling = until the incident
  closed. Then each step: done (or skipped) by its deadline, or not.
- **Who did what**: each person's actions, counted.

An open incident is reported too, marked as such (its clocks are then still running). PDF is not
rendered: the HTML prints to PDF from any browser, and a PDF engine (WeasyPrint and its native
libraries) is a large dependency for that alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.domain import Grade
from playbooks import runs
from playbooks.model import Role
from playbooks.views import require_incident
from storage.state.models import Alarm, AuditEntry, Incident
from storage.state.playbook_models import PlaybookRun, RunStep, StepCommand, StepEvidence

TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_TIMEZONE = ZoneInfo("Asia/Shanghai")
ResponseClocks = tuple[timedelta, timedelta]  # respond within, handle within

ACTIONS: dict[str, tuple[str, str]] = {
    "incident.opened": ("事件开始", "incident opened"), "incident.closed": ("事件关闭", "incident closed"),
    "incident.reopened": ("事件重新打开", "incident reopened"), "incident.regraded": ("事件升级", "incident regraded"),
    "incident.alarms_cleared": ("告警全部恢复", "all alarms normal"), "incident.taken": ("接管事件", "incident taken"),
    "playbook.started": ("预案启动", "playbook started"), "playbook.regraded": ("预案升级", "playbook regraded"),
    "playbook.reopened": ("预案重新执行", "playbook reopened"),
    "step.done": ("步骤完成", "step done"), "step.skipped": ("步骤跳过", "step skipped"),
    "step.decided": ("决策", "decision"), "step.assigned": ("指派", "assigned"), "step.comment": ("备注", "comment"),
    "step.confirmed": ("确认指令", "command confirmed"), "step.failed": ("步骤失败", "step failed"),
    "step.escalated": ("超时/失败升级通知", "escalated"),
    "command.queued": ("指令排队", "command queued"), "command.sent": ("指令下发", "command sent"),
    "command.acked": ("设备应答", "device acknowledged"), "command.rejected": ("设备拒绝", "device rejected"),
    "command.read_back": ("状态读回", "state read back"),
    "alarm.raised": ("告警产生", "alarm raised"), "alarm.repeated": ("告警重复", "alarm repeated"),
    "alarm.cleared": ("告警恢复", "alarm cleared"), "alarm.latched": ("告警锁存", "alarm latched"),
    "alarm.regraded": ("告警升级", "alarm regraded"), "alarm.ack": ("告警确认", "alarm acknowledged"),
    "alarm.reset": ("告警复位", "alarm reset"), "alarm.shelve": ("告警搁置", "alarm shelved"),
    "alarm.unshelve": ("取消搁置", "alarm unshelved"), "alarm.comment": ("告警备注", "alarm comment"),
    "alarm.suppressed": ("告警被抑制", "alarm suppressed"), "alarm.unsuppressed": ("解除抑制", "alarm unsuppressed"),
}
STATUS: dict[str, tuple[str, str]] = {
    "pending": ("待处理", "pending"), "in_progress": ("处理中", "in progress"),
    "awaiting_confirmation": ("待确认", "awaiting confirmation"), "done": ("已完成", "done"),
    "skipped": ("已跳过", "skipped"), "failed": ("失败", "failed"),
}


@dataclass(frozen=True, slots=True)
class Line:
    """One timeline entry."""

    at: datetime
    actor: str
    action: str
    label_zh: str
    label_en: str
    subject: str  # incident #3, alarm #12, step close-valve
    text: str


@dataclass(frozen=True, slots=True)
class Clock:
    """One SLA row: a target and what happened."""

    name_zh: str
    name_en: str
    target: str
    actual: str
    verdict: str  # met, missed, running


@dataclass(frozen=True, slots=True)
class StepLine:
    step_id: str
    title_zh: str
    title_en: str
    role: str
    mandatory: bool
    status: str
    status_zh: str
    reason: str
    assignee: str
    deadline: datetime
    done_at: datetime | None
    done_by: str
    verdict: str
    commands: list[str]
    evidence: list[tuple[datetime, str, str, str | None]]


@dataclass
class Report:
    incident: Incident
    run: PlaybookRun | None
    playbook_title: tuple[str, str] | None
    timezone: ZoneInfo
    generated_at: datetime
    clocks: list[Clock] = field(default_factory=list)
    steps: list[StepLine] = field(default_factory=list)
    timeline: list[Line] = field(default_factory=list)
    actors: list[tuple[str, list[tuple[str, int]]]] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.incident.state == "closed"

    @property
    def grade(self) -> Grade:
        return Grade(self.incident.grade)


def build(session: Session, incident_id: int, now: datetime, *, timezone: ZoneInfo = DEFAULT_TIMEZONE,
          clocks: ResponseClocks | None = None) -> Report:
    """The facts of one incident's report (`clocks`: the site's response clocks, default the grade's)."""
    incident = require_incident(session, incident_id)
    run = runs.run_of(session, incident_id)
    alarms = list(session.scalars(select(Alarm).where(Alarm.incident_id == incident_id).order_by(Alarm.id)))
    audit = _audit(session, incident_id, [a.id for a in alarms])
    playbook = runs.playbook_of(run) if run is not None else None
    report = Report(incident, run, (playbook.title.zh, playbook.title.en) if playbook else None, timezone, now,
                    alarms=alarms)
    report.timeline = [_line(entry) for entry in audit]
    grade = Grade(incident.grade)
    respond, handle = clocks or (grade.default_response, grade.default_handling)
    report.clocks = _clocks(incident, audit, now, respond, handle)
    if run is not None:
        report.steps = _steps(session, run, now)
    report.actors = _actors(audit)
    return report


def _audit(session: Session, incident_id: int, alarm_ids: Sequence[int]) -> list[AuditEntry]:
    mine = (AuditEntry.entity_type == "incident") & (AuditEntry.entity_id == str(incident_id))
    theirs = (AuditEntry.entity_type == "alarm") & AuditEntry.entity_id.in_([str(a) for a in alarm_ids])
    query = select(AuditEntry).where(or_(mine, theirs) if alarm_ids else mine).order_by(AuditEntry.at, AuditEntry.id)
    return list(session.scalars(query))


def _line(entry: AuditEntry) -> Line:
    zh, en = ACTIONS.get(entry.action, (entry.action, entry.action))
    detail = entry.detail or {}
    if entry.entity_type == "alarm":
        subject = f"告警/alarm #{entry.entity_id}"
    elif "step" in detail:
        subject = f"步骤/step {detail['step']}"
    else:
        subject = f"事件/incident #{entry.entity_id}"
    return Line(entry.at, entry.actor, entry.action, zh, en, subject, entry.reason or "")


def _clocks(incident: Incident, audit: Sequence[AuditEntry], now: datetime,
            respond: timedelta, handle: timedelta) -> list[Clock]:
    start = incident.opened_at
    people = [e.at for e in audit if e.actor != runs.SYSTEM_ACTOR]
    first = min(people, default=None)
    response = _clock("响应（首次人工处置）", "Response (first action by a person)", respond,
                      None if first is None else max(first - start, timedelta(0)), now - start)
    handled = None if incident.closed_at is None else incident.closed_at - start
    handling = _clock("处置（至事件关闭）", "Handling (until closed)", handle, handled, now - start)
    return [response, handling]


def _clock(name_zh: str, name_en: str, target: timedelta, actual: timedelta | None, running: timedelta) -> Clock:
    if actual is None:
        verdict = "missed" if running > target else "running"
        return Clock(name_zh, name_en, duration(target), f"— ({duration(running)}…)", verdict)
    return Clock(name_zh, name_en, duration(target), duration(actual), "met" if actual <= target else "missed")


def _steps(session: Session, run: PlaybookRun, now: datetime) -> list[StepLine]:
    playbook = runs.playbook_of(run)
    rows = runs.steps_of(session, run.id)
    ids = [r.id for r in rows]
    commands = list(session.scalars(select(StepCommand).where(StepCommand.run_step_id.in_(ids))
                                    .order_by(StepCommand.id))) if ids else []
    evidence = list(session.scalars(select(StepEvidence).where(StepEvidence.run_step_id.in_(ids))
                                    .order_by(StepEvidence.id))) if ids else []
    return [_step_line(r, playbook.step(r.step_id).title.zh, playbook.step(r.step_id).title.en,
                       [c for c in commands if c.run_step_id == r.id], [e for e in evidence if e.run_step_id == r.id],
                       now) for r in rows]


def _step_line(row: RunStep, title_zh: str, title_en: str, commands: Sequence[StepCommand],
               evidence: Sequence[StepEvidence], now: datetime) -> StepLine:
    role = Role(row.role)
    return StepLine(
        row.step_id, title_zh, title_en, f"{role.label_zh} / {role.label_en}", row.mandatory, row.status,
        STATUS.get(row.status, (row.status, row.status))[0], row.status_reason or "", row.assignee or "",
        row.deadline_at, row.done_at, row.done_by or "", _step_verdict(row, now), [_command(c) for c in commands],
        [(e.at, e.actor, e.text, e.photo_url) for e in evidence])


def _step_verdict(row: RunStep, now: datetime) -> str:
    if row.status == "skipped":
        return "skipped"
    if row.status == "done" and row.done_at is not None:
        return "met" if row.done_at <= row.deadline_at else "missed"
    return "missed" if now > row.deadline_at else "running"


def _command(command: StepCommand) -> str:
    parts = [f"{command.name} → {command.device}: {command.state}"]
    if command.ack_status:
        parts.append(f"ack {command.ack_status}" + (f" ({command.ack_reason})" if command.ack_reason else ""))
    if command.readback_value:
        parts.append("read back " + ", ".join(f"{k}={v}" for k, v in command.readback_value.items()))
    if command.error:
        parts.append(command.error)
    return "; ".join(parts)


def _actors(audit: Sequence[AuditEntry]) -> list[tuple[str, list[tuple[str, int]]]]:
    by_actor: dict[str, Counter[str]] = {}
    for entry in audit:
        if entry.actor != runs.SYSTEM_ACTOR:
            by_actor.setdefault(entry.actor, Counter())[entry.action] += 1
    return [(actor, sorted(counts.items())) for actor, counts in sorted(by_actor.items())]


def duration(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


# --- rendering -----------------------------------------------------------------------------------

def markdown(report: Report) -> str:
    return _environment(autoescape=False).get_template("report.md.j2").render(_context(report))


def html(report: Report) -> str:
    return _environment(autoescape=True).get_template("report.html.j2").render(_context(report))


def _context(report: Report) -> dict[str, Any]:
    return {"r": report, "i": report.incident, "run": report.run, "actions": ACTIONS, "status": STATUS,
            "verdicts": VERDICTS}


VERDICTS = {"met": ("达标", "met"), "missed": ("超时", "missed"), "running": ("进行中", "running"),
            "skipped": ("已跳过", "skipped")}


@cache
def _environment(*, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["cell"] = _cell
    env.globals["local"] = _local
    env.globals["duration"] = duration
    return env


def _cell(value: object) -> str:
    """People's text in Markdown: no pipes or line breaks to break a table, no HTML to render."""
    text = str(value if value is not None else "")
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("\n", " ")):
        text = text.replace(raw, escaped)
    return text


def _local(value: datetime | None, timezone: ZoneInfo) -> str:
    return "—" if value is None else f"{value.astimezone(timezone):%Y-%m-%d %H:%M:%S}"
