"""The technician roster (维修班组) in the state database, imported from CSV.

Columns: `id` (matches a work order's assignee), `name`, `skills` (`;`-separated, from
`maintenance.catalog.SKILLS`), `capacity_min` (minutes of work a day), `shift_start` and
`shift_end` (HH:MM, local time of the sites), `contractor` (empty for in-house staff, else the
maintenance company, e.g. the elevator 维保单位), `active` (true/false, default true).
Like the ledger: validated as a whole with line-numbered problems, upserted by id, never deleted
(set `active` to false to take someone off the roster), audited.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import PurePath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.inventory import Problem
from maintenance.catalog import SKILLS
from maintenance.ledger import LedgerError
from storage.state.equipment_models import Technician
from storage.state.models import AuditEntry

CSV_COLUMNS = ("id", "name", "skills", "capacity_min", "shift_start", "shift_end", "contractor", "active")
TECH_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
CAPACITY_RANGE = (30, 16 * 60)


@dataclass(frozen=True, slots=True)
class TechnicianSpec:
    id: str
    name: str
    skills: tuple[str, ...]
    capacity_min: int
    shift_start: time
    shift_end: time
    contractor: str = ""
    active: bool = True

    def values(self) -> dict[str, Any]:
        return {"name": self.name, "skills": list(self.skills), "daily_capacity_min": self.capacity_min,
                "shift_start": self.shift_start, "shift_end": self.shift_end, "contractor": self.contractor,
                "active": self.active}


def parse_csv(text: str, source: str) -> list[TechnicianSpec]:
    """Parse and validate a roster CSV. Raises `LedgerError` listing every problem."""
    problems: list[Problem] = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [c for c in ("id", "skills", "capacity_min") if c not in header]
    unknown = [c for c in header if c and c not in CSV_COLUMNS]
    for name in missing:
        problems.append(Problem(source, 1, name, "required column is missing"))
    for name in unknown:
        problems.append(Problem(source, 1, name, f"unknown column (expected: {', '.join(CSV_COLUMNS)})"))
    if problems:
        raise LedgerError(source, problems)
    reader.fieldnames = header
    specs: dict[str, TechnicianSpec] = {}
    for row in reader:
        line = reader.line_num
        spec = _spec(source, line, {k: (v or "").strip() for k, v in row.items() if k}, problems)
        if spec is not None and spec.id in specs:
            problems.append(Problem(source, line, "id", f"duplicate technician {spec.id}"))
        elif spec is not None:
            specs[spec.id] = spec
    if problems:
        raise LedgerError(source, problems)
    return list(specs.values())


def _spec(source: str, line: int, row: dict[str, str], problems: list[Problem]) -> TechnicianSpec | None:
    before = len(problems)

    def bad(column: str, message: str) -> None:
        problems.append(Problem(source, line, column, message))

    tech_id = row.get("id", "")
    if TECH_ID.fullmatch(tech_id) is None:
        bad("id", f"{tech_id!r} is not a valid id: 1-64 characters of A-Z a-z 0-9 _ . @ -")
    skills = tuple(s.strip() for s in row.get("skills", "").split(";") if s.strip())
    for skill in skills:
        if skill not in SKILLS:
            bad("skills", f"{skill!r} is not a skill ({', '.join(SKILLS)})")
    if not skills:
        bad("skills", "required, but missing")
    capacity = _int(row.get("capacity_min", ""))
    if capacity is None or not CAPACITY_RANGE[0] <= capacity <= CAPACITY_RANGE[1]:
        low, high = CAPACITY_RANGE
        bad("capacity_min", f"{row.get('capacity_min')!r} is not a number of minutes within {low}..{high}")
    start, end = _time(row.get("shift_start") or "08:30"), _time(row.get("shift_end") or "17:30")
    for column, value in (("shift_start", start), ("shift_end", end)):
        if value is None:
            bad(column, f"{row.get(column)!r} is not a time HH:MM")
    if start is not None and end is not None and not start < end:
        bad("shift_end", "the shift must end after it starts (night shifts are not supported)")
    active = row.get("active", "").lower() or "true"
    if active not in ("true", "false"):
        bad("active", f"{active!r} is not true or false")
    if len(problems) > before or capacity is None or start is None or end is None:
        return None
    return TechnicianSpec(tech_id, row.get("name", "")[:128], skills, capacity, start, end,
                          row.get("contractor", "")[:128], active == "true")


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _time(text: str) -> time | None:
    try:
        return time.fromisoformat(text)
    except ValueError:
        return None


def apply(session: Session, specs: list[TechnicianSpec], source: str, now: datetime, *, actor: str = "cli") -> int:
    """Upsert technicians by id; returns how many were created or changed."""
    existing = {t.id: t for t in session.scalars(select(Technician))}
    changed = 0
    for spec in specs:
        row = existing.get(spec.id)
        if row is None:
            session.add(Technician(id=spec.id, **spec.values(), updated_at=now))
        elif any(getattr(row, k) != v for k, v in spec.values().items()):
            for name, value in spec.values().items():
                setattr(row, name, value)
            row.updated_at = now
        else:
            continue
        changed += 1
    session.add(AuditEntry(at=now, actor=actor[:64], action="roster.import", entity_type="technician",
                           entity_id=PurePath(source).name[:64], reason="",
                           detail={"technicians": len(specs), "changed": changed}))
    return changed


def view(tech: Technician) -> dict[str, Any]:
    return {"id": tech.id, "name": tech.name, "skills": tech.skills, "capacity_min": tech.daily_capacity_min,
            "shift_start": tech.shift_start.strftime("%H:%M"), "shift_end": tech.shift_end.strftime("%H:%M"),
            "contractor": tech.contractor, "active": tech.active}
