"""Inventory files: parse a YAML or CSV device inventory into an `Inventory`, validating all of it.

Every problem is collected with its file, line and field, and all of them are raised together
as one `InventoryError`, so a user fixes a file in one pass. Ids follow the v1 contract,
families and meter kinds come from `core`, and every reference (building, zone, gateway) must
resolve inside the same file: an inventory file describes whole sites.

YAML nests sites → buildings → zones, with gateways and devices per site. CSV has one row per
device; the sites, buildings, zones and gateways its rows name are *implied*: created if
missing, never changed. The format is documented in docs/inventory.md.

Not for: writing the registry (`storage.state.registry.RegistryStore.apply`) or checking
readings against it (`ingest.registry.DeviceDirectory`).
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from core.csvfile import csv_header, csv_rows
from core.domain import ID_PATTERN, Family
from core.errors import ConfigError
from core.schema import MeterKind
from storage.state.registry import (
    DEFAULT_TIMEZONE,
    BuildingSpec,
    DeviceSpec,
    GatewaySpec,
    Inventory,
    SiteSpec,
    ZoneSpec,
)

__all__ = [
    "CSV_COLUMNS", "GATEWAY_KINDS", "ZONE_KINDS", "BuildingSpec", "DeviceSpec", "GatewaySpec", "Inventory",
    "InventoryError", "Problem", "SiteSpec", "ZoneSpec", "load_inventory", "parse_csv", "parse_yaml",
]

ZONE_KINDS = ("floor", "zone", "room", "plant_room", "shaft", "roof", "parking", "outdoor")
GATEWAY_KINDS = ("gateway", "fire_panel")
CSV_COLUMNS = ("site", "building", "zone", "floor", "gateway", "family", "kind", "device_id",
               "name_zh", "name_en", "equipment_id", "report_interval_s")
CSV_REQUIRED = ("site", "family", "device_id")
FLOOR_RANGE = (-10, 200)  # the elevator `floor` metric's range (core.schema)
INTERVAL_RANGE = (1.0, 7 * 86400.0)  # seconds; NB-IoT water meters report about daily
NAME_MAX, KIND_MAX, EQUIPMENT_MAX, DESCRIPTION_MAX = 128, 32, 64, 1000
YAML_SUFFIXES, CSV_SUFFIXES = (".yaml", ".yml"), (".csv",)

@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in an inventory file, located by line and field."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class InventoryError(ConfigError):
    """An inventory file that cannot be imported; `problems` lists every problem found."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(sorted(problems, key=lambda p: p.line))
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(f"{source}: {count}:\n" + "\n".join(f"  {p}" for p in self.problems))


def load_inventory(path: Path) -> Inventory:
    """Read and validate an inventory file (.yaml, .yml or .csv). Raises `InventoryError`."""
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES + CSV_SUFFIXES:
        raise InventoryError(source, [Problem(source, 1, "file", "unknown file type: use .yaml, .yml or .csv")])
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read inventory {source}: {exc.strerror}") from None
    if suffix in CSV_SUFFIXES:
        return parse_csv(_decode(data, source, fallback="gb18030"), source)
    return parse_yaml(_decode(data, source), source)


def _decode(data: bytes, source: str, fallback: str | None = None) -> str:
    """UTF-8 (with or without BOM); CSV falls back to GB18030, which Excel/WPS write on zh-CN systems."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if fallback is not None:
            try:
                return data.decode(fallback)
            except UnicodeDecodeError:
                pass
        line = data.count(b"\n", 0, exc.start) + 1
        problem = Problem(source, line, "file", "not UTF-8 text: save the file as UTF-8")
        raise InventoryError(source, [problem]) from None


# --- collecting problems and reading typed fields --------------------------------------------


def _as_int(typed: object, raw: str) -> int | None:
    if isinstance(typed, bool):
        return None
    if isinstance(typed, int):
        return typed
    if isinstance(typed, float):
        return int(typed) if typed.is_integer() else None
    try:
        return int(raw)
    except ValueError:
        return None


def _as_float(typed: object, raw: str) -> float | None:
    if isinstance(typed, bool):
        return None
    if isinstance(typed, int | float):
        return float(typed)
    try:
        return float(raw)
    except (ValueError, OverflowError):
        return None


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[Problem] = []

    def add(self, line: int, field_name: str, message: str) -> None:
        self.items.append(Problem(self.source, line, field_name, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise InventoryError(self.source, self.items)


@dataclass(frozen=True, slots=True)
class _Value:
    """One field's value: `raw` text (None if empty or null), YAML-typed value, line, scalar?"""

    raw: str | None
    typed: object
    line: int
    scalar: bool = True


@dataclass(frozen=True, slots=True)
class _Record:
    """The fields of one YAML mapping or CSV row; `path` prefixes field names in messages."""

    path: str
    line: int
    values: dict[str, _Value] = field(default_factory=dict)


class _Fields:
    """Typed, validated access to a record's fields; each bad value is recorded as a problem."""

    def __init__(self, problems: _Problems, record: _Record) -> None:
        self._problems, self.record = problems, record

    def name(self, key: str) -> str:
        return f"{self.record.path}.{key}" if self.record.path else key

    def line(self, key: str) -> int:
        value = self.record.values.get(key)
        return value.line if value is not None else self.record.line

    def problem(self, key: str, message: str) -> None:
        self._problems.add(self.line(key), self.name(key), message)

    def _raw(self, key: str, required: bool = False) -> str | None:
        value = self.record.values.get(key)
        if value is not None and not value.scalar:
            self.problem(key, "must be a single value, not a list or mapping")
            return None
        if value is None or value.raw is None:
            if required:
                self.problem(key, "required, but missing")
            return None
        return value.raw

    def ident(self, key: str, required: bool = False) -> str | None:
        raw = self._raw(key, required)
        if raw is not None and ID_PATTERN.fullmatch(raw) is None:
            self.problem(key, f"{raw!r} is not a valid id: 1-64 characters of A-Z a-z 0-9 _ -")
            return None
        return raw

    def text(self, key: str, max_len: int) -> str | None:
        raw = self._raw(key)
        if raw is not None and len(raw) > max_len:
            self.problem(key, f"too long: {len(raw)} characters, at most {max_len}")
            return None
        return raw

    def choice(self, key: str, choices: Sequence[str], what: str, required: bool = False) -> str | None:
        raw = self._raw(key, required)
        if raw is not None and raw not in choices:
            self.problem(key, f"{raw!r} is not a {what} ({', '.join(choices)})")
            return None
        return raw

    def given(self, key: str) -> bool:
        """The field has a value (valid or not)."""
        value = self.record.values.get(key)
        return value is not None and (value.raw is not None or not value.scalar)

    def integer(self, key: str, bounds: tuple[int, int]) -> int | None:
        raw = self._raw(key)
        if raw is None:
            return None
        number = _as_int(self.record.values[key].typed, raw)
        if number is None:
            self.problem(key, f"{raw!r} is not an integer")
        elif not bounds[0] <= number <= bounds[1]:
            self.problem(key, f"{number} is outside {bounds[0]}..{bounds[1]}")
            return None
        return number

    def seconds(self, key: str, bounds: tuple[float, float]) -> float | None:
        raw = self._raw(key)
        if raw is None:
            return None
        number = _as_float(self.record.values[key].typed, raw)
        if number is None:
            self.problem(key, f"{raw!r} is not a number")
        elif not (math.isfinite(number) and bounds[0] <= number <= bounds[1]):
            self.problem(key, f"{raw} is outside {bounds[0]:g}..{bounds[1]:g} seconds")
            return None
        return number

    def boolean(self, key: str, default: bool) -> bool:
        raw = self._raw(key)
        if raw is None:
            return default
        typed = self.record.values[key].typed
        if isinstance(typed, bool):
            return typed
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        self.problem(key, f"{raw!r} is not true or false")
        return default


# --- building the inventory: duplicates and references ---------------------------------------


@dataclass(frozen=True, slots=True)
class _Ref:
    line: int
    field: str
    table: str
    key: tuple[str, ...]
    message: str


class _Builder:
    """Collects specs by natural key, reports duplicates, and resolves references at the end."""

    def __init__(self, problems: _Problems) -> None:
        self.problems = problems
        self.tables: dict[str, dict[tuple[str, ...], tuple[Any, int]]] = {
            "sites": {}, "buildings": {}, "zones": {}, "gateways": {}, "devices": {},
        }
        self._refs: list[_Ref] = []

    def declare(self, table: str, key: tuple[str, ...], spec: object, f: _Fields, key_field: str) -> None:
        first = self.tables[table].get(key)
        if first is not None:
            what = f"{table[:-1]} {'/'.join(key[1:] if table != 'sites' else key)}"
            f.problem(key_field, f"duplicate {what} (first on line {first[1]})")
            return
        self.tables[table][key] = (spec, f.line(key_field))

    def imply(self, table: str, key: tuple[str, ...], spec: object, line: int) -> tuple[Any, int]:
        """Record a container a CSV row names; returns the first (spec, line) seen for the key."""
        return self.tables[table].setdefault(key, (spec, line))

    def require(self, f: _Fields, key_field: str, table: str, key: tuple[str, ...], message: str) -> None:
        self._refs.append(_Ref(f.line(key_field), f.name(key_field), table, key, message))

    def finish(self) -> Inventory:
        for ref in self._refs:
            if ref.key not in self.tables[ref.table]:
                self.problems.add(ref.line, ref.field, ref.message)
        if not self.tables["sites"] and not self.problems.items:  # else a consequence of those
            self.problems.add(1, "sites", "the inventory declares no site")
        self.problems.raise_if_any()
        specs = {table: tuple(spec for spec, _ in rows.values()) for table, rows in self.tables.items()}
        return Inventory(self.problems.source, specs["sites"], specs["buildings"], specs["zones"],
                         specs["gateways"], specs["devices"])


@dataclass(frozen=True, slots=True)
class _Location:
    building: str | None = None
    zone: str | None = None
    gateway: str | None = None


def _device(f: _Fields, builder: _Builder, site: str | None, id_key: str, where: _Location) -> None:
    """Validate one device's own fields; the caller has resolved its location and gateway."""
    device_id = f.ident(id_key, required=True)
    family_text = f.choice("family", [m.value for m in Family], "device family", required=True)
    family = Family(family_text) if family_text is not None else None
    if family is Family.METER:
        kind = f.choice("kind", [m.value for m in MeterKind], "meter kind", required=True)
    else:
        kind = f.text("kind", KIND_MAX)
    equipment_id = f.text("equipment_id", EQUIPMENT_MAX)
    name_zh, name_en = f.text("name_zh", NAME_MAX) or "", f.text("name_en", NAME_MAX) or ""
    interval = f.seconds("report_interval_s", INTERVAL_RANGE)
    if site is None or device_id is None or family is None:
        return
    spec = DeviceSpec(site, family, device_id, kind or "", where.building, where.zone, where.gateway,
                      equipment_id, name_zh, name_en, interval)
    builder.declare("devices", (site, family.value, device_id), spec, f, id_key)


def _version_1(f: _Fields) -> bool:
    """The optional `version:` of a YAML inventory is 1 (the only format so far)."""
    if not f.given("version"):
        return True
    version = f.integer("version", (-(2**31), 2**31))
    if version is not None and version != 1:
        f.problem("version", "this fmon reads inventory format version 1 only")
    return version == 1


def _timezone(f: _Fields) -> str:
    name = f.text("timezone", 64)
    if name is None:
        return DEFAULT_TIMEZONE
    if not _timezone_known(name):
        f.problem("timezone", f"{name!r} is not an IANA time zone such as Asia/Shanghai")
    return name


def _timezone_known(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except zoneinfo.ZoneInfoNotFoundError:
        return not _have_tz_database()  # without a tz database nothing can be checked
    except ValueError:
        return False
    return True


@cache
def _have_tz_database() -> bool:
    return bool(zoneinfo.available_timezones())


# --- YAML -----------------------------------------------------------------------------------

_SITE_FIELDS = ("id", "name_zh", "name_en", "timezone", "auto_register")
_BUILDING_FIELDS = ("id", "name_zh", "name_en")
_ZONE_FIELDS = ("id", "floor", "kind", "name_zh", "name_en")
_GATEWAY_FIELDS = ("id", "kind", "building", "zone", "description")
_DEVICE_FIELDS = ("id", "family", "kind", "building", "zone", "gateway", "equipment_id", "name_zh", "name_en",
                  "report_interval_s")


def parse_yaml(text: str, source: str) -> Inventory:
    """Parse and validate a YAML inventory. Raises `InventoryError` listing every problem."""
    problems = _Problems(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problems.add(mark.line + 1 if mark else 1, "yaml", f"not valid YAML: {exc.problem or exc.context}")
        problems.raise_if_any()
    except yaml.YAMLError as exc:
        problems.add(1, "yaml", f"not valid YAML: {exc}")
        problems.raise_if_any()
    builder = _Builder(problems)
    _YamlReader(problems, builder).document(root)
    return builder.finish()


class _YamlReader:
    """Walks the composed YAML nodes, so that every value keeps its line number."""

    def __init__(self, problems: _Problems, builder: _Builder) -> None:
        self._problems, self._builder = problems, builder
        self._constructor = SafeConstructor()

    def document(self, root: Node | None) -> None:
        if root is None:
            return  # an empty file: `finish` reports that no site is declared
        parsed = self._mapping(root, "", ("version",), ("sites",))
        if parsed is None:
            return
        f, lists = parsed
        if not _version_1(f):
            return  # a file of another format version: its other problems would mislead
        for i, node in self._items(lists, "sites"):
            self._site(node, f"sites[{i}]")

    def _site(self, node: Node, path: str) -> None:
        parsed = self._mapping(node, path, _SITE_FIELDS, ("buildings", "gateways", "devices"))
        if parsed is None:
            return
        f, lists = parsed
        site = f.ident("id", required=True)
        spec = SiteSpec(site or "", f.text("name_zh", NAME_MAX) or "", f.text("name_en", NAME_MAX) or "",
                        _timezone(f), f.boolean("auto_register", False))
        if site is not None:
            self._builder.declare("sites", (site,), spec, f, "id")
        for i, child in self._items(lists, "buildings"):
            self._building(child, f"{path}.buildings[{i}]", site)
        for i, child in self._items(lists, "gateways"):
            self._gateway(child, f"{path}.gateways[{i}]", site)
        for i, child in self._items(lists, "devices"):
            self._device(child, f"{path}.devices[{i}]", site)

    def _building(self, node: Node, path: str, site: str | None) -> None:
        parsed = self._mapping(node, path, _BUILDING_FIELDS, ("zones",))
        if parsed is None:
            return
        f, lists = parsed
        building = f.ident("id", required=True)
        names = (f.text("name_zh", NAME_MAX) or "", f.text("name_en", NAME_MAX) or "")
        if site is not None and building is not None:
            self._builder.declare("buildings", (site, building), BuildingSpec(site, building, *names), f, "id")
        for i, child in self._items(lists, "zones"):
            self._zone(child, f"{path}.zones[{i}]", site, building)

    def _zone(self, node: Node, path: str, site: str | None, building: str | None) -> None:
        parsed = self._mapping(node, path, _ZONE_FIELDS, ())
        if parsed is None:
            return
        f, _ = parsed
        zone = f.ident("id", required=True)
        floor = f.integer("floor", FLOOR_RANGE)
        kind = f.choice("kind", ZONE_KINDS, "zone kind") or ("floor" if floor is not None else "zone")
        names = (f.text("name_zh", NAME_MAX) or "", f.text("name_en", NAME_MAX) or "")
        if site is not None and building is not None and zone is not None:
            spec = ZoneSpec(site, building, zone, floor, kind, *names)
            self._builder.declare("zones", (site, building, zone), spec, f, "id")

    def _gateway(self, node: Node, path: str, site: str | None) -> None:
        parsed = self._mapping(node, path, _GATEWAY_FIELDS, ())
        if parsed is None:
            return
        f, _ = parsed
        gateway = f.ident("id", required=True)
        kind = f.choice("kind", GATEWAY_KINDS, "gateway kind") or "gateway"
        where = self._location(f, site)
        description = f.text("description", DESCRIPTION_MAX) or ""
        if site is not None and gateway is not None:
            spec = GatewaySpec(site, gateway, kind, where.building, where.zone, description)
            self._builder.declare("gateways", (site, gateway), spec, f, "id")

    def _device(self, node: Node, path: str, site: str | None) -> None:
        parsed = self._mapping(node, path, _DEVICE_FIELDS, ())
        if parsed is None:
            return
        f, _ = parsed
        where = self._location(f, site)
        gateway = f.ident("gateway")
        if site is not None and gateway is not None:
            self._builder.require(f, "gateway", "gateways", (site, gateway),
                                  f"gateway {gateway!r} is not declared in site {site}")
        _device(f, self._builder, site, "id", _Location(where.building, where.zone, gateway))

    def _location(self, f: _Fields, site: str | None) -> _Location:
        """Building and zone of a gateway or device, queued for reference checks."""
        building, zone = f.ident("building"), f.ident("zone")
        if zone is not None and not f.given("building"):
            f.problem("zone", "a zone needs its building: add `building:`")
        if site is None:
            return _Location(building, zone)
        if building is not None:
            self._builder.require(f, "building", "buildings", (site, building),
                                  f"building {building!r} is not declared in site {site}")
        if building is not None and zone is not None:
            self._builder.require(f, "zone", "zones", (site, building, zone),
                                  f"zone {zone!r} is not declared in building {building} of site {site}")
        return _Location(building, zone)

    # -- node helpers --

    def _mapping(self, node: Node, path: str, scalars: Sequence[str],
                 lists: Sequence[str]) -> tuple[_Fields, dict[str, SequenceNode]] | None:
        """The scalar fields and the nested lists of a mapping node; None if it is no mapping."""
        line = node.start_mark.line + 1
        if not isinstance(node, MappingNode):
            self._problems.add(line, path or "document", "must be a mapping of `field: value` lines")
            return None
        record, children = _Record(path, line), dict[str, SequenceNode]()
        seen: dict[str, int] = {}
        for key_node, value_node in self._pairs(node):
            key = _key_name(key_node)
            key_line, name = key_node.start_mark.line + 1, f"{path}.{key}" if path else key
            if key not in scalars and key not in lists:
                expected = ", ".join((*scalars, *lists))
                self._problems.add(key_line, name, f"unknown field (expected one of: {expected})")
            elif key in seen:
                self._problems.add(key_line, name, f"given twice (first on line {seen[key]})")
            elif key in lists:
                seen[key] = key_line
                self._list(value_node, name, children, key)
            else:
                seen[key] = key_line
                record.values[key] = self._value(value_node)
        return _Fields(self._problems, record), children

    def _pairs(self, node: MappingNode) -> list[tuple[Node, Node]]:
        """The key/value pairs, with `<<: *defaults` merge keys resolved the way PyYAML does:
        the mapping's own keys win, then earlier merged mappings. Own keys given twice stay twice."""
        own = [(k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]
        if len(own) == len(node.value):
            return own
        own_ids, own_names = {id(k) for k, _ in own}, {_key_name(k) for k, _ in own}
        self._constructor.flatten_mapping(node)
        merged: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            if id(key) not in own_ids and _key_name(key) not in own_names:
                merged[_key_name(key)] = (key, value)  # flattened in reverse priority: later wins
        return [*merged.values(), *own]

    def _list(self, node: Node, name: str, children: dict[str, SequenceNode], key: str) -> None:
        if isinstance(node, SequenceNode):
            children[key] = node
        elif not (isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
            self._problems.add(node.start_mark.line + 1, name, "must be a list (lines starting with `- `)")

    def _value(self, node: Node) -> _Value:
        line = node.start_mark.line + 1
        if not isinstance(node, ScalarNode):
            return _Value(None, None, line, scalar=False)
        if node.tag == "tag:yaml.org,2002:null":
            return _Value(None, None, line)
        try:
            typed = self._constructor.construct_object(node)
        except yaml.YAMLError:  # a tag the safe loader does not know, e.g. `!python/name`
            typed = node.value
        return _Value(str(node.value).strip() or None, typed, line)

    @staticmethod
    def _items(lists: dict[str, SequenceNode], key: str) -> Iterator[tuple[int, Node]]:
        node = lists.get(key)
        yield from enumerate(node.value if node is not None else [])


def _key_name(node: Node) -> str:
    return str(node.value) if isinstance(node, ScalarNode) else "?"


# --- CSV ------------------------------------------------------------------------------------


def parse_csv(text: str, source: str) -> Inventory:
    """Parse and validate a CSV inventory (one device per row). Raises `InventoryError`."""
    problems = _Problems(source)
    builder = _Builder(problems)
    rows = csv_rows(text, problems)
    header = next(rows, None)
    if header is None:
        problems.add(1, "header", f"empty file: the first line names the columns ({', '.join(CSV_COLUMNS)})")
        problems.raise_if_any()
        return builder.finish()
    columns = csv_header(header[0], header[1], CSV_COLUMNS, CSV_REQUIRED, problems)
    for line, cells in rows:
        if any(cell.strip() for cell in cells[len(columns):]):
            problems.add(line, "row", f"{len(cells)} cells, but the header names {len(columns)} columns")
            continue
        values = {col: _Value(cell.strip() or None, cell.strip(), line)
                  for col, cell in zip(columns, cells, strict=False) if col}
        _csv_device(_Fields(problems, _Record("", line, values)), builder)
    return builder.finish()


def _csv_device(f: _Fields, builder: _Builder) -> None:
    """One CSV row: imply its site, building, zone and gateway, then declare the device."""
    site, building, zone = f.ident("site", required=True), f.ident("building"), f.ident("zone")
    floor, gateway = f.integer("floor", FLOOR_RANGE), f.ident("gateway")
    if floor is not None and not f.given("zone"):
        zone = _floor_zone(floor)
    if (zone is not None or floor is not None) and not f.given("building"):
        f.problem("zone" if f.given("zone") else "floor", "a zone or floor needs its building")
        zone = None
    if site is not None:
        _imply_containers(f, builder, site, _Location(building, zone, gateway), floor)
    _device(f, builder, site, "device_id", _Location(building, zone, gateway))


def _imply_containers(f: _Fields, builder: _Builder, site: str, where: _Location, floor: int | None) -> None:
    line = f.record.line
    builder.imply("sites", (site,), SiteSpec(site, declared=False), line)
    if where.gateway is not None:
        builder.imply("gateways", (site, where.gateway), GatewaySpec(site, where.gateway, declared=False), line)
    if where.building is None:
        return
    builder.imply("buildings", (site, where.building), BuildingSpec(site, where.building, declared=False), line)
    if where.zone is None:
        return
    kind = "floor" if floor is not None and where.zone == _floor_zone(floor) else "zone"
    spec = ZoneSpec(site, where.building, where.zone, floor, kind, declared=False)
    key = (site, where.building, where.zone)
    first, first_line = builder.imply("zones", key, spec, line)
    if floor is None or first.floor == floor:
        return
    if first.floor is None:  # an earlier row named the zone without its floor
        builder.tables["zones"][key] = (replace(first, floor=floor), first_line)
    else:
        f.problem("floor", f"floor {floor} differs from floor {first.floor} of zone {where.zone} on line {first_line}")


def _floor_zone(floor: int) -> str:
    """The zone id a CSV row's floor stands for when it names no zone: F1, F2…, B1 (floor -1)…"""
    return f"B{-floor}" if floor < 0 else f"F{floor}"
