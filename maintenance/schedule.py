"""The maintenance schedule: jobs placed on technicians' days, pure (the clock is an argument).

Input: `Job`s (due plan tasks, open work orders, predicted risks; `maintenance.schedule_inputs`
reads them from the state database), the technicians (`Crew`) and `Options`. Output: a
`Schedule`, day by day, each booking with a one-line bilingual reason, and the jobs that could
not be placed with the reason why.

Rules, in this order:
- Jobs are placed one at a time, most pressing first: work already in progress, then by
  priority (urgent → low), then by failure risk (highest first), then by due date (earliest
  first), then by key (stable).
- A job goes to the earliest day (not before its `earliest` day, never in the past) on which a
  technician with its skill has a free stretch of `duration_min` minutes inside the shift,
  without exceeding the technician's daily capacity, while no other job is booked on the same
  piece of equipment. A job already assigned to a technician of
  the roster stays with that technician. Among technicians, the earliest start wins, then the
  least loaded.
- Blackout windows (default: no elevator or escalator work 07:00–09:00 and 17:00–19:00 local
  time, the rush hours) are kept free of blackout-sensitive jobs on those equipment types.
- Jobs are not split across days; a job longer than any technician's day is unschedulable.
- A job placed after its due date is placed anyway and marked late.

Times are local to `Options.tz`: shifts and blackout windows are wall-clock times there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from maintenance.catalog import SKILLS, priority_rank

LIFT_TYPES = frozenset({"elevator", "escalator"})
DEFAULT_TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True, slots=True)
class Blackout:
    """No blackout-sensitive work on these equipment types from `start` to `end`, local time, each day."""

    equipment_types: frozenset[str]
    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"blackout {self.start:%H:%M}-{self.end:%H:%M}: the end must be after the start")

    @property
    def minutes(self) -> tuple[int, int]:
        return _minute(self.start), _minute(self.end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


DEFAULT_BLACKOUTS = (Blackout(LIFT_TYPES, time(7), time(9)), Blackout(LIFT_TYPES, time(17), time(19)))


def parse_blackout(text: str) -> list[Blackout]:
    """``elevator,escalator=07:00-09:00,17:00-19:00`` → blackout windows. Raises ValueError."""
    types, sep, spans = text.partition("=")
    kinds = frozenset(t.strip() for t in types.split(",") if t.strip())
    if not sep or not kinds or not spans.strip():
        raise ValueError(f"blackout {text!r}: write TYPES=HH:MM-HH:MM[,HH:MM-HH:MM], "
                         "e.g. elevator,escalator=07:00-09:00,17:00-19:00")
    windows = []
    for span in spans.split(","):
        start, dash, end = span.strip().partition("-")
        if not dash:
            raise ValueError(f"blackout {text!r}: {span.strip()!r} is not HH:MM-HH:MM")
        windows.append(Blackout(kinds, _clock(start, text), _clock(end, text)))
    return windows


def _clock(text: str, whole: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"blackout {whole!r}: {text.strip()!r} is not a time HH:MM") from None


@dataclass(frozen=True, slots=True)
class Crew:
    """A technician as the scheduler sees one: skills, minutes of work a day, shift (local time)."""

    id: str
    skills: frozenset[str]
    capacity_min: int
    shift_start: time = time(8, 30)
    shift_end: time = time(17, 30)
    name: str = ""

    @property
    def shift(self) -> tuple[int, int]:
        return _minute(self.shift_start), _minute(self.shift_end)

    @property
    def day_min(self) -> int:
        """The longest job this technician can take in one day."""
        start, end = self.shift
        return min(self.capacity_min, end - start)


@dataclass(frozen=True, slots=True)
class Job:
    """Something to schedule. `basis_en`/`basis_zh` say why it is on the list (the reason's start)."""

    key: str
    kind: str  # planned, corrective, predictive
    equipment_id: str
    equipment_type: str
    title_zh: str
    title_en: str
    skill: str
    duration_min: int
    priority: str = "normal"
    risk: float = 0.0
    due: date | None = None
    earliest: date | None = None
    blackout_sensitive: bool = True
    work_order_id: int | None = None
    assignee: str | None = None
    in_progress: bool = False
    basis_en: str = ""
    basis_zh: str = ""

    def view(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "equipment_id": self.equipment_id,
                "equipment_type": self.equipment_type, "title_zh": self.title_zh, "title_en": self.title_en,
                "skill": self.skill, "duration_min": self.duration_min, "priority": self.priority,
                "risk": round(self.risk, 4), "due": _day(self.due), "work_order_id": self.work_order_id,
                "assignee": self.assignee}


def order_key(job: Job) -> tuple[int, int, float, date, str]:
    """The order jobs are placed in: in progress, priority, risk (high first), due date, key."""
    return (0 if job.in_progress else 1, priority_rank(job.priority), -job.risk, job.due or date.max, job.key)


@dataclass(frozen=True, slots=True)
class Booking:
    job: Job
    technician: str
    day: date
    start: datetime
    end: datetime
    late: bool
    reason_en: str
    reason_zh: str

    def view(self) -> dict[str, Any]:
        return {**self.job.view(), "technician": self.technician, "date": self.day.isoformat(),
                "start": self.start.isoformat(), "end": self.end.isoformat(), "late": self.late,
                "reason_en": self.reason_en, "reason_zh": self.reason_zh}


@dataclass(frozen=True, slots=True)
class Unscheduled:
    job: Job
    reason_en: str
    reason_zh: str

    def view(self) -> dict[str, Any]:
        return {**self.job.view(), "reason_en": self.reason_en, "reason_zh": self.reason_zh}


@dataclass(frozen=True, slots=True)
class Options:
    days: int = 14
    blackouts: tuple[Blackout, ...] = DEFAULT_BLACKOUTS
    tz: tzinfo = DEFAULT_TZ
    step_min: int = 15  # today's work starts no earlier than now, rounded up to this step

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 92:
            raise ValueError("days must be within 1..92")


@dataclass(frozen=True, slots=True)
class Schedule:
    first_day: date
    days: int
    tz: str
    bookings: tuple[Booking, ...]
    unscheduled: tuple[Unscheduled, ...]

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=self.days - 1)

    def on(self, day: date) -> list[Booking]:
        return sorted((b for b in self.bookings if b.day == day), key=lambda b: (b.start, b.technician))

    def as_json(self) -> dict[str, Any]:
        days = [self.first_day + timedelta(days=i) for i in range(self.days)]
        return {"first_day": self.first_day.isoformat(), "last_day": self.last_day.isoformat(), "timezone": self.tz,
                "days": [{"date": d.isoformat(), "items": [b.view() for b in self.on(d)]} for d in days],
                "unscheduled": [u.view() for u in self.unscheduled]}


@dataclass
class _Board:
    """Bookings per (technician, day) as minute intervals of the day."""

    slots: dict[tuple[str, date], list[tuple[int, int]]] = field(default_factory=dict)
    equipment: dict[tuple[str, date], list[tuple[int, int]]] = field(default_factory=dict)

    def used(self, crew: Crew, day: date) -> int:
        return sum(end - start for start, end in self.slots.get((crew.id, day), []))

    def fit(self, crew: Crew, day: date, job: Job, not_before: int, blackouts: Sequence[tuple[int, int]]) -> int | None:
        """The earliest start minute for `job` on `crew`'s `day`, or None. One job at a time per
        technician and per piece of equipment."""
        if self.used(crew, day) + job.duration_min > crew.capacity_min:
            return None
        shift_start, shift_end = crew.shift
        blocked = [*self.slots.get((crew.id, day), []), *self.equipment.get((job.equipment_id, day), []), *blackouts]
        low = max(shift_start, not_before)
        for start in sorted({low} | {end for _, end in blocked if end > low}):
            end = start + job.duration_min
            if end > shift_end:
                return None
            if all(end <= b_start or start >= b_end for b_start, b_end in blocked):
                return start
        return None

    def book(self, crew: Crew, day: date, job: Job, start: int) -> None:
        self.slots.setdefault((crew.id, day), []).append((start, start + job.duration_min))
        self.equipment.setdefault((job.equipment_id, day), []).append((start, start + job.duration_min))


def build_schedule(jobs: Iterable[Job], crews: Sequence[Crew], now: datetime, options: Options = Options()) -> Schedule:
    """Place `jobs` on `crews`' days from today (local) for `options.days` days."""
    local_now = now.astimezone(options.tz)
    first = local_now.date()
    board = _Board()
    bookings: list[Booking] = []
    unscheduled: list[Unscheduled] = []
    not_before_today = _round_up(_minute(local_now.time()), options.step_min)
    for job in sorted(jobs, key=order_key):
        candidates = _candidates(job, crews)
        blackouts = _blackouts(job, options.blackouts)
        placed = None
        for offset in range(options.days):
            day = first + timedelta(days=offset)
            if job.earliest is not None and day < job.earliest:
                continue
            placed = _place(board, job, candidates, day, not_before_today if offset == 0 else 0, blackouts)
            if placed is not None:
                crew, start = placed
                board.book(crew, day, job, start)
                bookings.append(_booking(job, crew, day, start, options))
                break
        if placed is None:
            unscheduled.append(_unschedulable(job, candidates, blackouts, first, options))
    return Schedule(first, options.days, str(options.tz), tuple(bookings), tuple(unscheduled))


def _candidates(job: Job, crews: Sequence[Crew]) -> list[Crew]:
    assigned = [c for c in crews if c.id == job.assignee]
    return assigned or [c for c in crews if job.skill in c.skills]


def _blackouts(job: Job, blackouts: Sequence[Blackout]) -> list[tuple[int, int]]:
    if not job.blackout_sensitive:
        return []
    return [b.minutes for b in blackouts if job.equipment_type in b.equipment_types]


def _place(board: _Board, job: Job, crews: Sequence[Crew], day: date, not_before: int,
           blackouts: Sequence[tuple[int, int]]) -> tuple[Crew, int] | None:
    options = []
    for crew in crews:
        start = board.fit(crew, day, job, not_before, blackouts)
        if start is not None:
            options.append((start, board.used(crew, day), crew.id, crew))
    if not options:
        return None
    start, _, _, crew = min(options, key=lambda o: o[:3])
    return crew, start


def _booking(job: Job, crew: Crew, day: date, start: int, options: Options) -> Booking:
    begins = datetime.combine(day, time(start // 60, start % 60), options.tz)
    late = job.due is not None and day > job.due
    en, zh = [job.basis_en], [job.basis_zh]
    if late:
        en.append(f"late: was due {job.due}")
        zh.append(f"已逾期(应于 {job.due} 前完成)")
    spans = [b for b in options.blackouts if job.blackout_sensitive and job.equipment_type in b.equipment_types]
    if spans:
        en.append("outside the rush hours " + ", ".join(str(b) for b in spans))
        zh.append("避开高峰时段 " + "、".join(str(b) for b in spans))
    return Booking(job, crew.id, day, begins, begins + timedelta(minutes=job.duration_min), late,
                   "; ".join(p for p in en if p), ";".join(p for p in zh if p))


def _unschedulable(job: Job, candidates: Sequence[Crew], blackouts: Sequence[tuple[int, int]], first: date,
                   options: Options) -> Unscheduled:
    skill_zh, skill_en = SKILLS.get(job.skill, (job.skill, job.skill))
    last = first + timedelta(days=options.days - 1)
    if not candidates:
        return Unscheduled(job, f"no active technician has the skill {skill_en}", f"无具备“{skill_zh}”技能的在岗技术员")
    longest = max(c.day_min for c in candidates)
    if job.duration_min > longest:
        return Unscheduled(job, f"needs {job.duration_min} min in one day, more than any {skill_en} technician's "
                                f"day ({longest} min)",
                           f"需连续 {job.duration_min} 分钟,超过{skill_zh}技术员单日可用时间({longest} 分钟)")
    gap = max(_longest_gap(c, blackouts) for c in candidates)
    if job.duration_min > gap:
        return Unscheduled(job, f"needs {job.duration_min} min in one go, but the blackout windows leave at most "
                                f"{gap} min of a shift",
                           f"需连续 {job.duration_min} 分钟,但禁止作业时段使班次内最长仅余 {gap} 分钟")
    if job.earliest is not None and job.earliest > last:
        return Unscheduled(job, f"not due before {job.earliest}, after the schedule ends ({last})",
                           f"{job.earliest} 前无需执行,晚于排程结束日 {last}")
    if job.assignee is not None and [c.id for c in candidates] == [job.assignee]:
        return Unscheduled(job, f"{job.assignee} (assigned) has no {job.duration_min} free minutes by {last}",
                           f"截至 {last} 已指派的 {job.assignee} 没有 {job.duration_min} 分钟空闲")
    return Unscheduled(job, f"no {skill_en} technician has {job.duration_min} free minutes by {last}",
                       f"截至 {last} 无{skill_zh}技术员有 {job.duration_min} 分钟空闲")


def _longest_gap(crew: Crew, blackouts: Sequence[tuple[int, int]]) -> int:
    start, end = crew.shift
    longest, cursor = 0, start
    for b_start, b_end in sorted(blackouts):
        if b_end <= cursor or b_start >= end:
            continue
        longest = max(longest, b_start - cursor)
        cursor = max(cursor, b_end)
    return min(max(longest, end - cursor), crew.capacity_min)


def _minute(value: time) -> int:
    return value.hour * 60 + value.minute


def _round_up(minute: int, step: int) -> int:
    return -(-minute // step) * step


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()
