"""The equipment ledger (设备台账) as CSV: parse and validate, import (upsert by code), export.

One row per piece of equipment; the columns are `CSV_COLUMNS` (docs/equipment-health.md). An
import validates the whole file before saving anything: every problem is collected with its
line and column and raised together as one `LedgerError` (`FILE:LINE: FIELD: PROBLEM`), like
the device inventory (`ingest.inventory`). References must resolve in the device registry:
the site, building and zone, and every linked device (an unknown device is an error, because a
link that resolves to nothing silently fails to suppress alarms in maintenance mode).

Import upserts by equipment code in one transaction with one audit entry; it never deletes
(equipment missing from a file stays), and a row's `devices` replace that equipment's links.
Importing the same file again changes nothing; `export_csv` writes what `import_csv` reads.
An import also installs (or updates) the built-in maintenance plans (`maintenance.plans`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.csvfile import csv_header, csv_rows
from core.domain import ID_PATTERN, Family
from core.errors import ConfigError, Conflict
from core.schema import metric_spec
from ingest.inventory import Problem
from maintenance.catalog import EQUIPMENT_STATUSES, EQUIPMENT_TYPES
from maintenance.plans import install_builtin
from storage.state.database import StateDatabase
from storage.state.equipment_models import Equipment, EquipmentDevice
from storage.state.models import AuditEntry, Building, Device, Site, Zone

CSV_COLUMNS = ("code", "site", "type", "name_zh", "name_en", "model", "manufacturer", "building", "floor", "zone",
               "installed_on", "warranty_until", "contractor", "status", "devices", "metrics", "notes")
CSV_REQUIRED = ("code", "site", "type")
LIST_SEPARATOR = ";"
FLOOR_RANGE = (-10, 200)
TEXT_MAX, NOTES_MAX = 128, 2000
_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")  # 2019-03-15, 2019/3/15 (Excel, WPS zh-CN)
AUDIT_ENTITY = "equipment"


class LedgerError(ConfigError):
    """A ledger file that cannot be imported; `problems` lists every problem found."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(sorted(problems, key=lambda p: p.line))
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(f"{source}: {count}:\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True, slots=True)
class DeviceLink:
    site: str
    family: str
    device_id: str

    def __str__(self) -> str:
        return f"{self.site}/{self.family}/{self.device_id}"


@dataclass(frozen=True, slots=True)
class EquipmentSpec:
    """One ledger row, validated; `line` is where it is in its file."""

    code: str
    site: str
    type: str
    line: int = 0
    name_zh: str = ""
    name_en: str = ""
    model: str = ""
    manufacturer: str = ""
    building: str | None = None
    floor: int | None = None
    zone: str | None = None
    installed_on: date | None = None
    warranty_until: date | None = None
    contractor: str = ""
    status: str = "in_service"
    devices: tuple[DeviceLink, ...] = ()
    metrics: tuple[str, ...] = ()
    notes: str = ""

    def values(self) -> dict[str, Any]:
        """The `Equipment` columns this row sets."""
        return {"site": self.site, "type": self.type, "name_zh": self.name_zh, "name_en": self.name_en,
                "model": self.model, "manufacturer": self.manufacturer, "building_id": self.building,
                "floor": self.floor, "zone_id": self.zone, "installed_on": self.installed_on,
                "warranty_until": self.warranty_until, "contractor": self.contractor, "status": self.status,
                "metrics": list(self.metrics), "notes": self.notes}


@dataclass(frozen=True, slots=True)
class LedgerReport:
    source: str
    created: int
    updated: int
    unchanged: int
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "dry_run": self.dry_run}


# --- parsing -------------------------------------------------------------------------------------


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[Problem] = []

    def add(self, line: int, column: str, message: str) -> None:
        self.items.append(Problem(self.source, line, column, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise LedgerError(self.source, self.items)


@dataclass
class _Row:
    """The cells of one CSV row by column, with typed readers that record problems."""

    line: int
    cells: Mapping[str, str]
    problems: _Problems
    bad: list[str] = field(default_factory=list)

    def problem(self, column: str, message: str) -> None:
        self.bad.append(column)
        self.problems.add(self.line, column, message)

    def raw(self, column: str, required: bool = False) -> str | None:
        value = self.cells.get(column, "").strip()
        if not value and required:
            self.problem(column, "required, but missing")
        return value or None

    def ident(self, column: str, required: bool = False) -> str | None:
        value = self.raw(column, required)
        if value is not None and ID_PATTERN.fullmatch(value) is None:
            self.problem(column, f"{value!r} is not a valid id: 1-64 characters of A-Z a-z 0-9 _ -")
            return None
        return value

    def text(self, column: str, max_len: int = TEXT_MAX) -> str:
        value = self.raw(column) or ""
        if len(value) > max_len:
            self.problem(column, f"too long: {len(value)} characters, at most {max_len}")
            return ""
        return value

    def choice(self, column: str, choices: Sequence[str], what: str, default: str | None = None) -> str | None:
        value = self.raw(column, required=default is None)
        if value is None:
            return default
        if value not in choices:
            self.problem(column, f"{value!r} is not {what} ({', '.join(choices)})")
            return None
        return value

    def integer(self, column: str, bounds: tuple[int, int]) -> int | None:
        value = self.raw(column)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            self.problem(column, f"{value!r} is not an integer")
            return None
        if not bounds[0] <= number <= bounds[1]:
            self.problem(column, f"{number} is outside {bounds[0]}..{bounds[1]}")
            return None
        return number

    def day(self, column: str) -> date | None:
        value = self.raw(column)
        if value is None:
            return None
        parsed = parse_date(value)
        if parsed is None:
            self.problem(column, f"{value!r} is not a date (YYYY-MM-DD)")
        return parsed

    def items(self, column: str) -> list[str]:
        value = self.raw(column) or ""
        return [item.strip() for item in value.split(LIST_SEPARATOR) if item.strip()]


def parse_date(text: str) -> date | None:
    """YYYY-MM-DD, also with / or . as separators and one-digit months and days; None if not a date."""
    match = _DATE.fullmatch(text.strip())
    if match is None:
        return None
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def parse_csv(text: str, source: str) -> list[EquipmentSpec]:
    """Parse and validate a ledger CSV (no database needed). Raises `LedgerError`."""
    problems = _Problems(source)
    specs = _parse(text, problems)
    problems.raise_if_any()
    return specs


def _parse(text: str, problems: _Problems) -> list[EquipmentSpec]:
    """The valid rows; the problems of the others are added to `problems`."""
    rows = csv_rows(text, problems)
    header = next(rows, None)
    if header is None:
        problems.add(1, "header", f"empty file: the first line names the columns ({', '.join(CSV_COLUMNS)})")
        problems.raise_if_any()
    assert header is not None  # for mypy: raise_if_any raised otherwise
    columns = csv_header(header[0], header[1], CSV_COLUMNS, CSV_REQUIRED, problems)
    specs: list[EquipmentSpec] = []
    first_line: dict[str, int] = {}
    for line, cells in rows:
        if any(cell.strip() for cell in cells[len(columns):]):
            problems.add(line, "row", f"{len(cells)} cells, but the header names {len(columns)} columns")
            continue
        row = _Row(line, {col: cell for col, cell in zip(columns, cells, strict=False) if col}, problems)
        spec = _spec(row)
        if spec is None:
            continue
        if spec.code in first_line:
            problems.add(line, "code", f"duplicate equipment {spec.code} (first on line {first_line[spec.code]})")
            continue
        first_line[spec.code] = line
        specs.append(spec)
    return specs


def _spec(row: _Row) -> EquipmentSpec | None:
    code, site = row.ident("code", required=True), row.ident("site", required=True)
    kind = row.choice("type", list(EQUIPMENT_TYPES), "an equipment type")
    name_zh, name_en = row.text("name_zh"), row.text("name_en")
    if not name_zh and not name_en and "name_zh" not in row.bad and "name_en" not in row.bad:
        row.problem("name_zh", "give a name: name_zh, name_en or both")
    building, floor, zone = row.ident("building"), row.integer("floor", FLOOR_RANGE), row.ident("zone")
    if zone is not None and building is None and "building" not in row.bad:
        row.problem("zone", "a zone needs its building")
    installed, warranty = row.day("installed_on"), row.day("warranty_until")
    if installed is not None and warranty is not None and warranty < installed:
        row.problem("warranty_until", f"{warranty} is before installed_on {installed}")
    status = row.choice("status", list(EQUIPMENT_STATUSES), "an equipment status", default="in_service")
    devices = _devices(row, site)
    metrics = _metrics(row, devices)
    spec_fields = {
        "model": row.text("model"), "manufacturer": row.text("manufacturer"), "contractor": row.text("contractor"),
        "notes": row.text("notes", NOTES_MAX),
    }
    if row.bad or code is None or site is None or kind is None or status is None:
        return None
    return EquipmentSpec(code, site, kind, row.line, name_zh, name_en, building=building, floor=floor, zone=zone,
                         installed_on=installed, warranty_until=warranty, status=status, devices=tuple(devices),
                         metrics=tuple(metrics), **spec_fields)


def _devices(row: _Row, site: str | None) -> list[DeviceLink]:
    links: list[DeviceLink] = []
    families = [f.value for f in Family]
    for ref in row.items("devices"):
        parts = ref.split("/")
        if len(parts) != 3 or any(ID_PATTERN.fullmatch(p) is None for p in parts):
            row.problem("devices", f"{ref!r} is not a device reference site/family/device_id")
        elif parts[1] not in families:
            row.problem("devices", f"{ref!r}: {parts[1]!r} is not a device family ({', '.join(families)})")
        elif site is not None and parts[0] != site:
            row.problem("devices", f"{ref!r} is a device of site {parts[0]}, not of {site}")
        elif (link := DeviceLink(*parts)) not in links:
            links.append(link)
    return links


def _metrics(row: _Row, devices: Sequence[DeviceLink]) -> list[str]:
    families = [Family(d.family) for d in devices] or list(Family)
    metrics: list[str] = []
    for name in row.items("metrics"):
        if not any(metric_spec(family, name) is not None for family in families):
            where = "the linked devices' families" if devices else "any device family"
            row.problem("metrics", f"{name!r} is not a metric of {where}")
        elif name not in metrics:
            metrics.append(name)
    return metrics


# --- references to the registry ------------------------------------------------------------------


def check_references(session: Session, specs: Sequence[EquipmentSpec], source: str,
                     problems: _Problems | None = None) -> None:
    """Site, building, zone and linked devices must be registered; a code keeps its site.
    Raises `LedgerError` with these problems and any `problems` found before."""
    problems = problems or _Problems(source)
    named = {spec.site for spec in specs}
    sites = set(session.scalars(select(Site.id).where(Site.id.in_(named))))
    buildings = set(session.execute(select(Building.site, Building.building_id).where(Building.site.in_(named))))
    zones = set(session.execute(select(Zone.site, Zone.building_id, Zone.zone_id).where(Zone.site.in_(named))))
    devices = set(session.execute(select(Device.site, Device.family, Device.device_id).where(Device.site.in_(named))))
    owners = dict(iter(session.execute(select(Equipment.id, Equipment.site)).tuples()))  # not the Result's keys()
    for spec in specs:
        if spec.site not in sites:
            problems.add(spec.line, "site", f"unknown site {spec.site!r}: import the device inventory first")
            continue
        if owners.get(spec.code, spec.site) != spec.site:
            problems.add(spec.line, "code", f"{spec.code} already belongs to site {owners[spec.code]}")
        if spec.building is not None and (spec.site, spec.building) not in buildings:
            problems.add(spec.line, "building", f"building {spec.building!r} is not registered in site {spec.site}")
        elif spec.zone is not None and (spec.site, spec.building, spec.zone) not in zones:
            problems.add(spec.line, "zone", f"zone {spec.zone!r} is not registered in building {spec.building}")
        for link in spec.devices:
            if (link.site, link.family, link.device_id) not in devices:
                problems.add(spec.line, "devices", f"unknown device {link}: not in the device registry")
    problems.raise_if_any()


# --- import and export ---------------------------------------------------------------------------


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""


def import_csv(db: StateDatabase, text: str, source: str, now: datetime, *, actor: str = "cli",
               dry_run: bool = False) -> LedgerReport:
    """Validate and upsert a ledger CSV in one transaction. Raises `LedgerError`."""
    problems = _Problems(source)
    specs = _parse(text, problems)
    report = LedgerReport(source, 0, 0, 0, dry_run)
    try:
        with db.session() as session:
            check_references(session, specs, source, problems)  # all problems of the file at once
            report = apply(session, specs, source, now, actor=actor, dry_run=dry_run)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    except IntegrityError as exc:
        raise Conflict(f"the ledger refused {source} (a concurrent change?): {exc.orig}") from None
    return report


def apply(session: Session, specs: Sequence[EquipmentSpec], source: str, now: datetime, *, actor: str = "cli",
          dry_run: bool = False) -> LedgerReport:
    """Upsert validated rows in the caller's transaction, with one audit entry."""
    check_references(session, specs, source)
    existing = {e.id: e for e in session.scalars(select(Equipment).where(Equipment.id.in_([s.code for s in specs])))}
    links = _links(session, list(existing))
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for spec in specs:
        row = existing.get(spec.code)
        if row is None:
            session.add(Equipment(id=spec.code, **spec.values(), created_at=now, updated_at=now))
            outcome = "created"
        elif _differs(row, spec.values()) or links.get(spec.code, set()) != set(spec.devices):
            for name, value in spec.values().items():
                setattr(row, name, value)
            row.updated_at, outcome = now, "updated"
        else:
            outcome = "unchanged"
        counts[outcome] += 1
    session.flush()
    _replace_links(session, [s for s in specs if links.get(s.code, set()) != set(s.devices)])
    install_builtin(session, now)  # so the new equipment's plans show before the first generation
    report = LedgerReport(source, counts["created"], counts["updated"], counts["unchanged"], dry_run)
    session.add(AuditEntry(at=now, actor=actor[:64], action="ledger.import", entity_type=AUDIT_ENTITY,
                           entity_id=PurePath(source).name[:64], reason="", detail=report.as_dict()))
    return report


def _links(session: Session, codes: Sequence[str]) -> dict[str, set[DeviceLink]]:
    found: dict[str, set[DeviceLink]] = {}
    query = select(EquipmentDevice).where(EquipmentDevice.equipment_id.in_(codes))
    for link in session.scalars(query):
        found.setdefault(link.equipment_id, set()).add(DeviceLink(link.site, link.family, link.device_id))
    return found


def _replace_links(session: Session, specs: Sequence[EquipmentSpec]) -> None:
    for spec in specs:
        for old in session.scalars(select(EquipmentDevice).where(EquipmentDevice.equipment_id == spec.code)):
            session.delete(old)
        session.flush()
        session.add_all(EquipmentDevice(equipment_id=spec.code, site=d.site, family=d.family, device_id=d.device_id)
                        for d in spec.devices)
    session.flush()


def _differs(row: Equipment, wanted: Mapping[str, Any]) -> bool:
    return any(getattr(row, name) != value for name, value in wanted.items())


def export_csv(session: Session, site: str | None = None) -> str:
    """The ledger as CSV (`CSV_COLUMNS`), ordered by site and code: what `import_csv` reads."""
    query = select(Equipment).order_by(Equipment.site, Equipment.id)
    if site is not None:
        query = query.where(Equipment.site == site)
    rows = list(session.scalars(query))
    links = _links(session, [row.id for row in rows])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        devices = LIST_SEPARATOR.join(sorted(str(link) for link in links.get(row.id, set())))
        writer.writerow([
            row.id, row.site, row.type, row.name_zh, row.name_en, row.model, row.manufacturer, row.building_id or "",
            "" if row.floor is None else row.floor, row.zone_id or "", _iso(row.installed_on),
            _iso(row.warranty_until), row.contractor, row.status, devices, LIST_SEPARATOR.join(row.metrics), row.notes,
        ])
    return out.getvalue()


def decode(data: bytes, source: str) -> str:
    """UTF-8 (with or without BOM), else GB18030, which Excel and WPS write on zh-CN systems."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise LedgerError(source, [Problem(source, 1, "file", "not UTF-8 text: save the file as UTF-8")])


def _iso(value: date | None) -> str:
    return "" if value is None else value.isoformat()
