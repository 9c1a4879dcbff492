"""The device registry in the state database: sites, buildings, zones, gateways and devices.

`RegistryStore.apply()` upserts a whole inventory in one transaction with one audit entry; it
never deletes (a device missing from a file stays registered). The inventory values below are
the store's input; `ingest.inventory` parses and validates files into them. Reading a
registry for the ingest hot path is `ingest.registry.DeviceDirectory`'s job, not this module's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import Any, Literal

from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.domain import DeviceRef, Family
from core.errors import Conflict
from storage.state.database import StateDatabase
from storage.state.models import AuditEntry, Building, Device, Gateway, Site, Zone

DEFAULT_TIMEZONE = "Asia/Shanghai"
AUDIT_ENTITY = "registry"  # entity_type of the audit entries of every registry change
KINDS = ("sites", "buildings", "zones", "gateways", "devices")
RegisteredBy = Literal["inventory", "auto"]
DeviceKey = tuple[str, Family, str]
_CHUNK = 500  # keys per IN (...) query, well below SQLite's bound-parameter limit


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A site as an inventory declares it. `declared=False`: only referenced (CSV), create if missing."""

    site: str
    name_zh: str = ""
    name_en: str = ""
    timezone: str = DEFAULT_TIMEZONE
    auto_register: bool = False
    declared: bool = True


@dataclass(frozen=True, slots=True)
class BuildingSpec:
    site: str
    building_id: str
    name_zh: str = ""
    name_en: str = ""
    declared: bool = True


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """A floor or zone of a building; `kind` is one of `ingest.inventory.ZONE_KINDS`."""

    site: str
    building_id: str
    zone_id: str
    floor: int | None = None
    kind: str = "zone"
    name_zh: str = ""
    name_en: str = ""
    declared: bool = True


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    """A gateway (`kind="gateway"`) or fire panel (`kind="fire_panel"`) that owns devices."""

    site: str
    gateway_id: str
    kind: str = "gateway"
    building_id: str | None = None
    zone_id: str | None = None
    description: str = ""
    declared: bool = True


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A device: identity, kind, location (building, zone), parent gateway, linked equipment."""

    site: str
    family: Family
    device_id: str
    kind: str = ""
    building_id: str | None = None
    zone_id: str | None = None
    gateway_id: str | None = None
    equipment_id: str | None = None
    name_zh: str = ""
    name_en: str = ""
    report_interval_s: float | None = None

    @property
    def ref(self) -> DeviceRef:
        return DeviceRef(self.site, self.family, self.device_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRecord(DeviceSpec):
    """A registered device: its spec plus where it came from and when."""

    registered_by: RegisteredBy
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything one inventory file declares, flattened; `source` names the file."""

    source: str
    sites: tuple[SiteSpec, ...] = ()
    buildings: tuple[BuildingSpec, ...] = ()
    zones: tuple[ZoneSpec, ...] = ()
    gateways: tuple[GatewaySpec, ...] = ()
    devices: tuple[DeviceSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did (or, with `dry_run`, would do), per kind of record."""

    source: str
    created: Mapping[str, int]
    updated: Mapping[str, int]
    unchanged: Mapping[str, int]
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return any(self.created.values()) or any(self.updated.values())

    def counts(self) -> dict[str, int]:
        """Totals over all kinds: created, updated, unchanged."""
        return {name: sum(getattr(self, name).values()) for name in ("created", "updated", "unchanged")}


@dataclass
class _Tally:
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)

    def report(self, source: str, dry_run: bool) -> ImportReport:
        def full(counter: Counter[str]) -> dict[str, int]:
            return {kind: counter[kind] for kind in KINDS}

        return ImportReport(source, full(self.created), full(self.updated), full(self.unchanged), dry_run)


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""


class RegistryStore:
    """Reads and writes the device registry."""

    def __init__(self, db: StateDatabase) -> None:
        self._db = db

    def apply(self, inventory: Inventory, now: datetime, *, actor: str = "cli",
              dry_run: bool = False) -> ImportReport:
        """Upsert the inventory in one transaction with an audit entry; never deletes.

        Re-applying the same inventory changes nothing (all records `unchanged`). With
        `dry_run` the transaction is rolled back and the report says what would have changed.
        Raises `Conflict` if a concurrent import won a race (retry), or if a reference does not
        resolve (`ingest.inventory` checks references before they get here).
        """
        tally = _Tally()
        try:
            with self._db.session() as session:
                _Upsert(session, tally, now).run(inventory)
                session.add(_audit(inventory, tally.report(inventory.source, dry_run), actor, now))
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        except IntegrityError as exc:
            raise Conflict(f"the registry refused {inventory.source} (a concurrent change, or a reference to a "
                           f"record it does not hold): {exc.orig}") from None
        return tally.report(inventory.source, dry_run)

    def sites(self) -> list[SiteSpec]:
        with self._db.session() as session:
            return [_site_spec(row) for row in session.scalars(select(Site).order_by(Site.id))]

    def gateways(self, site: str | None = None) -> list[GatewaySpec]:
        """Registered gateways and fire panels, of one site or all, ordered by site and id."""
        query = select(Gateway).order_by(Gateway.site, Gateway.gateway_id)
        if site is not None:
            query = query.where(Gateway.site == site)
        with self._db.session() as session:
            return [GatewaySpec(g.site, g.gateway_id, g.kind, g.building_id, g.zone_id, g.description)
                    for g in session.scalars(query)]

    def devices(self, site: str | None = None) -> list[DeviceRecord]:
        """Registered devices, of one site or all, ordered by site, family, device id."""
        # Plain rows, not ORM objects: DeviceDirectory.refresh() reads every device.
        query = select(*_DEVICE_COLUMNS).order_by(Device.site, Device.family, Device.device_id)
        if site is not None:
            query = query.where(Device.site == site)
        with self._db.session() as session:
            return [_device_record(*row) for row in session.execute(query).tuples()]

    def revision(self) -> tuple[int, int]:
        """Changes whenever the registry does: (newest registry audit entry, device count).

        Every import and auto-registration appends a `registry` audit entry in its own
        transaction; the count catches devices deleted by hand. Two small indexed queries.
        """
        newest = select(func.max(AuditEntry.id)).where(AuditEntry.entity_type == AUDIT_ENTITY)
        with self._db.session() as session:
            return session.scalar(newest) or 0, session.scalar(select(func.count()).select_from(Device)) or 0

    def known_devices(self) -> set[DeviceKey]:
        """(site, family, device_id) of every registered device."""
        query = select(Device.site, Device.family, Device.device_id)
        with self._db.session() as session:
            return {(s, Family(f), d) for s, f, d in session.execute(query).tuples()}

    def auto_register(self, device: DeviceRef, now: datetime) -> None:
        """Register one device as `auto` (see `auto_register_many`)."""
        self.auto_register_many([device], now)

    def auto_register_many(self, devices: Iterable[DeviceRef], now: datetime, *, actor: str = "ingest") -> int:
        """Register unknown devices of existing sites as `auto`; returns how many were new.

        Idempotent; devices already registered and devices of unknown sites are skipped.
        Policy (does the site allow it?) is the caller's. A race with another worker is
        retried once.
        """
        wanted = list(dict.fromkeys(devices))
        for attempt in (1, 2):
            try:
                with self._db.session() as session:
                    return _insert_auto(session, wanted, now, actor)
            except IntegrityError:
                if attempt == 2:
                    raise Conflict("auto-registration raced with another writer twice") from None
        raise AssertionError("unreachable")


class _Upsert:
    """One import inside one session: parents first, so foreign keys hold at every flush."""

    def __init__(self, session: Session, tally: _Tally, now: datetime) -> None:
        self._session, self._tally, self._now = session, tally, now

    def run(self, inventory: Inventory) -> None:
        sites = sorted(_sites_of(inventory))
        self._kind("sites", Site, select(Site).where(Site.id.in_(sites)), inventory.sites,
                   lambda r: (r.id,), lambda s: (s.site,), _site_values)
        self._kind("buildings", Building, select(Building).where(Building.site.in_(sites)), inventory.buildings,
                   lambda r: (r.site, r.building_id), lambda s: (s.site, s.building_id), _building_values)
        self._kind("zones", Zone, select(Zone).where(Zone.site.in_(sites)), inventory.zones,
                   lambda r: (r.site, r.building_id, r.zone_id), lambda s: (s.site, s.building_id, s.zone_id),
                   _zone_values)
        self._kind("gateways", Gateway, select(Gateway).where(Gateway.site.in_(sites)), inventory.gateways,
                   lambda r: (r.site, r.gateway_id), lambda s: (s.site, s.gateway_id), _gateway_values)
        self._kind("devices", Device, select(Device).where(Device.site.in_(sites)), inventory.devices,
                   lambda r: (r.site, r.family, r.device_id), lambda s: (s.site, s.family.value, s.device_id),
                   self._device_values)

    def _kind(self, kind: str, model: type[Any], query: Any, specs: Iterable[Any],
              row_key: Callable[[Any], tuple[str, ...]], spec_key: Callable[[Any], tuple[str, ...]],
              values: Callable[[Any], dict[str, Any]]) -> None:
        existing = {row_key(row): row for row in self._session.scalars(query)}
        for spec in specs:
            key, wanted = spec_key(spec), values(spec)
            row = existing.get(key)
            if row is None:
                existing[key] = row = model(**wanted, **self._stamps(model, created=True))
                self._session.add(row)
                self._tally.created[kind] += 1
            elif getattr(spec, "declared", True) and _differs(row, wanted):
                for name, value in {**wanted, **self._stamps(model, created=False)}.items():
                    setattr(row, name, value)
                self._tally.updated[kind] += 1
            else:
                self._tally.unchanged[kind] += 1
        self._session.flush()

    def _stamps(self, model: type[Any], *, created: bool) -> dict[str, datetime]:
        if model is not Device:
            return {}
        return {"created_at": self._now, "updated_at": self._now} if created else {"updated_at": self._now}

    @staticmethod
    def _device_values(spec: DeviceSpec) -> dict[str, Any]:
        return {
            "site": spec.site, "family": spec.family.value, "device_id": spec.device_id, "kind": spec.kind,
            "building_id": spec.building_id, "zone_id": spec.zone_id, "gateway_id": spec.gateway_id,
            "equipment_id": spec.equipment_id, "name_zh": spec.name_zh, "name_en": spec.name_en,
            "report_interval_s": spec.report_interval_s, "registered_by": "inventory",
        }


def _sites_of(inventory: Inventory) -> set[str]:
    specs: tuple[tuple[Any, ...], ...] = (
        inventory.sites, inventory.buildings, inventory.zones, inventory.gateways, inventory.devices,
    )
    return {spec.site for group in specs for spec in group}


def _differs(row: Any, wanted: Mapping[str, Any]) -> bool:
    return any(getattr(row, name) != value for name, value in wanted.items())


def _site_values(spec: SiteSpec) -> dict[str, Any]:
    return {"id": spec.site, "name_zh": spec.name_zh, "name_en": spec.name_en,
            "timezone": spec.timezone, "auto_register": spec.auto_register}


def _building_values(spec: BuildingSpec) -> dict[str, Any]:
    return {"site": spec.site, "building_id": spec.building_id, "name_zh": spec.name_zh, "name_en": spec.name_en}


def _zone_values(spec: ZoneSpec) -> dict[str, Any]:
    return {"site": spec.site, "building_id": spec.building_id, "zone_id": spec.zone_id, "floor": spec.floor,
            "kind": spec.kind, "name_zh": spec.name_zh, "name_en": spec.name_en}


def _gateway_values(spec: GatewaySpec) -> dict[str, Any]:
    return {"site": spec.site, "gateway_id": spec.gateway_id, "kind": spec.kind, "building_id": spec.building_id,
            "zone_id": spec.zone_id, "description": spec.description}


def _audit(inventory: Inventory, report: ImportReport, actor: str, now: datetime) -> AuditEntry:
    detail = {
        "source": inventory.source, "sites": sorted({s.site for s in inventory.sites}),
        "created": dict(report.created), "updated": dict(report.updated), "unchanged": dict(report.unchanged),
    }
    return AuditEntry(at=now, actor=actor[:64], action="inventory.import", entity_type=AUDIT_ENTITY,
                      entity_id=PurePath(inventory.source).name[:64], reason="", detail=detail)


def _insert_auto(session: Session, devices: list[DeviceRef], now: datetime, actor: str) -> int:
    if not devices:
        return 0
    sites = set(session.scalars(select(Site.id).where(Site.id.in_({d.site for d in devices}))))
    keys = [(d.site, d.family.value, d.device_id) for d in devices if d.site in sites]
    if not keys:
        return 0
    existing: set[tuple[str, str, str]] = set()
    for start in range(0, len(keys), _CHUNK):
        existing.update(session.execute(
            select(Device.site, Device.family, Device.device_id)
            .where(tuple_(Device.site, Device.family, Device.device_id).in_(keys[start:start + _CHUNK]))
        ).tuples())
    new = [d for d in devices if d.site in sites and (d.site, d.family.value, d.device_id) not in existing]
    by_site: defaultdict[str, list[str]] = defaultdict(list)
    for d in new:
        session.add(Device(site=d.site, family=d.family.value, device_id=d.device_id, kind="", name_zh="",
                           name_en="", registered_by="auto", created_at=now, updated_at=now))
        by_site[d.site].append(f"{d.family.value}/{d.device_id}")
    session.flush()
    for site, names in by_site.items():
        session.add(AuditEntry(at=now, actor=actor[:64], action="device.auto_register", entity_type=AUDIT_ENTITY,
                               entity_id=site, reason="unknown device of a site that allows auto-registration",
                               detail={"devices": names[:1000], "count": len(names)}))
    return len(new)


def _site_spec(row: Site) -> SiteSpec:
    return SiteSpec(row.id, row.name_zh, row.name_en, row.timezone, row.auto_register)


_DEVICE_COLUMNS = (
    Device.site, Device.family, Device.device_id, Device.kind, Device.building_id, Device.zone_id,
    Device.gateway_id, Device.equipment_id, Device.name_zh, Device.name_en, Device.report_interval_s,
    Device.registered_by, Device.created_at, Device.updated_at,
)


def _device_record(site: str, family: str, device_id: str, kind: str, building_id: str | None,
                   zone_id: str | None, gateway_id: str | None, equipment_id: str | None, name_zh: str,
                   name_en: str, report_interval_s: float | None, registered_by: str, created_at: datetime,
                   updated_at: datetime) -> DeviceRecord:
    return DeviceRecord(
        site, Family(family), device_id, kind, building_id, zone_id, gateway_id, equipment_id, name_zh, name_en,
        report_interval_s, registered_by="auto" if registered_by == "auto" else "inventory",
        created_at=created_at, updated_at=updated_at,
    )
