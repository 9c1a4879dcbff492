"""Escalating steps through the alarm notifiers: who is told about an overdue or failed step,
the notification-log entries, and their bilingual text.

Reasons are `step-overdue:<run>:<step row>` and `step-failed:<run>:<step row>:<attempt>`;
with the log's unique key (alarm, receiver, reason) each is recorded once, also across restarts.
The log's alarm id is 0 (`NO_ALARM`): the reason names what the notification is about. Who: the
on-duty control room (tier 1) and supervisor (tier 2) at the due time, the project manager
(tier 3) too for grades 1–2, and the receivers the routes add for the incident's cause and grade;
quiet hours hold back grades 3–4 as for alarms.

`StepSubjects` renders the entries for `alarms.notify.dispatcher` (registered by runtime); an
entry whose step was done or skipped meanwhile is cancelled instead of sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from alarms.notify.dispatcher import Subject
from alarms.notify.message import Message
from alarms.notify.nflog import Entry, NewEntry, NotificationLog
from alarms.routing import PROJECT_MANAGER_TIER, Router
from core.domain import Grade
from playbooks import runs
from playbooks.model import Role
from storage.state.database import StateDatabase
from storage.state.models import Incident
from storage.state.playbook_models import PlaybookRun, RunStep

NO_ALARM = 0
OVERDUE, FAILED = "step-overdue", "step-failed"
PREFIXES = (OVERDUE, FAILED)
_STATUS = {
    "pending": ("待处理", "pending"), "in_progress": ("处理中", "in progress"),
    "awaiting_confirmation": ("待操作员确认", "awaiting an operator's confirmation"),
    "done": ("已完成", "done"), "skipped": ("已跳过", "skipped"), "failed": ("失败", "failed"),
}


def overdue_reason(run_id: int, row_id: int) -> str:
    return f"{OVERDUE}:{run_id}:{row_id}"


def failed_reason(run_id: int, row_id: int, attempt: int) -> str:
    return f"{FAILED}:{run_id}:{row_id}:{attempt}"


def parse(reason: str) -> tuple[str, int, int] | None:
    """`step-overdue:3:17` → ("step-overdue", 3, 17); None for other reasons."""
    parts = reason.split(":")
    if len(parts) < 3 or parts[0] not in PREFIXES or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return parts[0], int(parts[1]), int(parts[2])


@dataclass(frozen=True, slots=True)
class Place:
    """What routing needs to know about an incident."""

    site: str
    cause: str
    grade: int


class StepNotifier:
    """Records the notifications of an escalated step in the alarm notification log."""

    def __init__(self, router: Router, nflog: NotificationLog) -> None:
        self.router, self._log = router, nflog

    def receivers(self, place: Place, at: datetime) -> list[str]:
        grade = Grade(place.grade)
        tiers = (1, 2, PROJECT_MANAGER_TIER) if grade.is_emergency else (1, 2)
        route = self.router.routes(place.site, place.cause, grade)
        names = [n for tier in tiers for n in self.router.on_duty(place.site, tier, at)] if route.roster else []
        return list(dict.fromkeys([*names, *route.receivers]))

    def record(self, reason: str, place: Place, due_at: datetime, now: datetime) -> list[str]:
        """Log one entry per receiver (once: the log's unique key); returns the receivers."""
        grade = Grade(place.grade)
        entries = []
        for name in self.receivers(place, due_at):
            receiver = self.router.receiver(name)
            if receiver is not None:
                entries.append(NewEntry(NO_ALARM, name, receiver.channel, reason,
                                        self.router.muted(name, grade, due_at)))
        self._log.record(entries, now)
        return [e.receiver for e in entries]


class StepSubjects:
    """Renders step notifications for the dispatcher (`Dispatcher.subjects[prefix]`)."""

    def __init__(self, db: StateDatabase, router: Router, console_url: str | None = None) -> None:
        self._db, self._router = db, router
        self._console_url = console_url or router.config.console_url

    def __call__(self, entry: Entry, _now: datetime) -> Subject | None:
        parsed = parse(entry.reason)
        if parsed is None:
            return None
        kind, run_id, row_id = parsed
        with self._db.session() as session:
            run, row = session.get(PlaybookRun, run_id), session.get(RunStep, row_id)
            incident = session.get(Incident, run.incident_id) if run is not None else None
            if run is None or row is None or incident is None or row.run_id != run.id:
                return None
            facts = _Facts(kind, incident, run, row, self._router.timezone(incident.site))
        view = facts.view()
        message = render(facts, self._link(incident.id))
        if row.status in runs.SETTLED or run.state != runs.RUNNING:
            return Subject(view, message, cancelled=f"step {row.step_id} is {row.status} (incident {run.state})")
        return Subject(view, message)

    def _link(self, incident_id: int) -> str | None:
        return f"{self._console_url.rstrip('/')}/#/incidents/{incident_id}" if self._console_url else None


@dataclass(frozen=True, slots=True)
class _Facts:
    kind: str
    incident: Incident
    run: PlaybookRun
    row: RunStep
    timezone: ZoneInfo

    def view(self) -> Mapping[str, Any]:
        i, row = self.incident, self.row
        return {"id": f"incident-{i.id}", "incident_id": i.id, "site": i.site, "building": i.building,
                "zone": i.zone, "cause": i.cause, "grade": i.grade, "title_zh": i.title_zh, "title_en": i.title_en,
                "playbook": self.run.playbook_key, "step_id": row.step_id, "role": row.role,
                "deadline_at": _iso(row.deadline_at), "status": row.status, "status_reason": row.status_reason}


def render(facts: _Facts, link: str | None) -> Message:
    """The bilingual text: zh-CN first, then English."""
    step = runs.playbook_of(facts.run).step(facts.row.step_id)
    grade, role = Grade(facts.run.grade), Role(facts.row.role)
    overdue = facts.kind == OVERDUE
    why_zh, why_en = ("应急步骤超时未完成", "step overdue") if overdue else ("应急步骤失败", "step failed")
    status_zh, status_en = _STATUS.get(facts.row.status, (facts.row.status, facts.row.status))
    deadline = f"{facts.row.deadline_at.astimezone(facts.timezone):%Y-%m-%d %H:%M:%S} ({facts.timezone.key})"
    zh = [f"事件：{facts.incident.title_zh}（#{facts.incident.id}）", f"步骤：{step.title.zh}（{role.label_zh}）",
          f"时限：{deadline}", f"状态：{status_zh}"]
    en = [f"Incident: {facts.incident.title_en} (#{facts.incident.id})", f"Step: {step.title.en} ({role.label_en})",
          f"Deadline: {deadline}", f"Status: {status_en}"]
    if facts.row.status_reason:
        zh.append(f"原因：{facts.row.status_reason}")
        en.append(f"Reason: {facts.row.status_reason}")
    title = f"【{grade.label_zh}】{why_zh}：{step.title.zh} | [{grade.label_en}] {why_en}: {step.title.en}"
    links = ([f"查看：{link}"], [f"Open: {link}"]) if link else ([], [])
    text = "\n".join([f"【{grade.label_zh}】{why_zh}", *zh, *links[0], "", f"[{grade.label_en}] {why_en}", *en,
                      *links[1], ""])
    markdown = "\n".join([f"### 【{grade.label_zh}】{why_zh}", *(f"- {line}" for line in zh), "",
                          f"**[{grade.label_en}] {why_en}**", *(f"- {line}" for line in en),
                          *([f"\n[查看事件 / Open the incident]({link})"] if link else [])])
    return Message(title, text, markdown, link)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
