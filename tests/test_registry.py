"""The device registry on SQLite and PostgreSQL, and the in-memory directory of the ingest path."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core.domain import DeviceRef, Family
from core.errors import Conflict
from core.schema import DEFAULT_REPORT_INTERVAL_S
from ingest.inventory import load_inventory, parse_yaml
from ingest.registry import UNKNOWN_DEVICE, UNKNOWN_SITE, DeviceDirectory
from storage.state.database import StateDatabase
from storage.state.models import AuditEntry, Building
from storage.state.registry import BuildingSpec, DeviceRecord, DeviceSpec, Inventory, RegistryStore, SiteSpec

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
ALL_KINDS = ("sites", "buildings", "zones", "gateways", "devices")

OPEN_SITE = """\
sites:
  - id: depot
    auto_register: true
    devices:
      - {family: env, id: known-1, report_interval_s: 45}
"""


@pytest.fixture(scope="module")
def example() -> Inventory:
    return load_inventory(EXAMPLES / "inventory.yaml")


def imports_of(db: StateDatabase) -> list[AuditEntry]:
    with db.session() as session:
        query = select(AuditEntry).where(AuditEntry.action == "inventory.import").order_by(AuditEntry.id)
        return list(session.scalars(query))


def counts(created: int = 0, updated: int = 0, unchanged: int = 0, **by_kind: int) -> dict[str, int]:
    return {"created": created, "updated": updated, "unchanged": unchanged, **by_kind}


# --- the store -------------------------------------------------------------------------------


def test_import_is_idempotent_and_audited(state_db: StateDatabase, example: Inventory) -> None:
    store = RegistryStore(state_db)
    first = store.apply(example, T0, actor="engineer1")
    assert dict(first.created) == {"sites": 1, "buildings": 3, "zones": 13, "gateways": 3, "devices": 26}
    assert first.counts() == counts(created=46)
    again = store.apply(example, T0 + timedelta(minutes=1), actor="engineer1")
    assert again.counts() == counts(unchanged=46)
    assert not again.changed
    audit = imports_of(state_db)
    assert [(a.actor, a.entity_id) for a in audit] == [("engineer1", "inventory.yaml")] * 2
    assert audit[0].detail["created"]["devices"] == 26
    assert audit[1].detail["unchanged"]["zones"] == 13
    assert audit[0].detail["sites"] == ["demo"]


def test_import_updates_what_changed(state_db: StateDatabase, example: Inventory) -> None:
    store = RegistryStore(state_db)
    store.apply(example, T0)
    devices = tuple(replace(d, report_interval_s=120.0) if d.device_id == "wm-b1-main" else d
                    for d in example.devices)
    buildings = (replace(example.buildings[0], name_en="Tower A"), *example.buildings[1:])
    report = store.apply(replace(example, devices=devices, buildings=buildings), T0 + timedelta(hours=1))
    assert (report.updated["devices"], report.updated["buildings"], report.counts()["updated"]) == (1, 1, 2)
    [meter] = [d for d in store.devices("demo") if d.device_id == "wm-b1-main"]
    assert (meter.report_interval_s, meter.created_at, meter.updated_at) == (120.0, T0, T0 + timedelta(hours=1))


def test_csv_never_overwrites_what_the_yaml_declared(state_db: StateDatabase, example: Inventory) -> None:
    store = RegistryStore(state_db)
    store.apply(example, T0)
    report = store.apply(load_inventory(EXAMPLES / "inventory.csv"), T0)
    assert report.counts() == counts(unchanged=46)
    with state_db.session() as session:
        building = session.get(Building, ("demo", "b1"))
        assert building is not None
        assert building.name_zh == "1号楼(写字楼)"


def test_dry_run_saves_nothing(state_db: StateDatabase, example: Inventory) -> None:
    store = RegistryStore(state_db)
    report = store.apply(example, T0, dry_run=True)
    assert report.dry_run
    assert report.counts() == counts(created=46)
    assert (store.sites(), store.devices(), imports_of(state_db)) == ([], [], [])


def test_references_are_foreign_keys(state_db: StateDatabase) -> None:
    orphan = DeviceSpec("s1", Family.ENV, "e1", building_id="b1", zone_id="nowhere")
    inventory = Inventory("orphan.yaml", (SiteSpec("s1"),), (BuildingSpec("s1", "b1"),), devices=(orphan,))
    store = RegistryStore(state_db)
    with pytest.raises(Conflict, match=r"orphan\.yaml"):
        store.apply(inventory, T0)
    assert store.sites() == []  # one transaction: nothing of it was kept


def test_queries(state_db: StateDatabase, example: Inventory) -> None:
    store = RegistryStore(state_db)
    store.apply(example, T0)
    store.apply(parse_yaml(OPEN_SITE, "depot.yaml"), T0)
    assert [(s.site, s.auto_register, s.timezone) for s in store.sites()] == [
        ("demo", False, "Asia/Shanghai"), ("depot", True, "Asia/Shanghai")]
    assert [d.device_id for d in store.devices("depot")] == ["known-1"]
    assert len(store.devices()) == 27
    assert ("demo", Family.METER, "em-b1-main") in store.known_devices()
    [fire_pump] = [d for d in store.devices("demo") if d.device_id == "pump-fire-1"]
    assert (fire_pump.family, fire_pump.gateway_id, fire_pump.zone_id, fire_pump.registered_by) == (
        Family.PUMP, "gw-plant", "pump-room", "inventory")


def test_auto_registration_is_idempotent_and_adopted_by_the_inventory(state_db: StateDatabase) -> None:
    store = RegistryStore(state_db)
    depot = parse_yaml(OPEN_SITE, "depot.yaml")
    store.apply(depot, T0)
    new = DeviceRef("depot", Family.GAS, "gd-9")
    stranger = DeviceRef("nowhere", Family.GAS, "gd-9")
    assert store.auto_register_many([new, new, stranger], T0) == 1
    store.auto_register(new, T0)  # already there: nothing happens
    [auto] = [d for d in store.devices("depot") if d.registered_by == "auto"]
    assert (auto.ref, auto.created_at) == (new, T0)
    with state_db.session() as session:
        entries = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "device.auto_register")))
    assert [(e.entity_type, e.entity_id, e.detail["devices"]) for e in entries] == [
        ("registry", "depot", ["gas/gd-9"])]
    adopted = parse_yaml(OPEN_SITE + "      - {family: gas, id: gd-9, name_en: Boiler room}\n", "depot.yaml")
    assert store.apply(adopted, T0).updated["devices"] == 1
    assert {d.registered_by for d in store.devices("depot")} == {"inventory"}


def test_directory_over_the_store(state_db: StateDatabase, example: Inventory) -> None:
    store = RegistryStore(state_db)
    directory = DeviceDirectory(store)
    assert directory.is_open
    assert not directory.refresh_if_changed()
    store.apply(example, T0)
    store.apply(parse_yaml(OPEN_SITE, "depot.yaml"), T0)
    assert directory.refresh_if_changed()
    assert directory.check(DeviceRef("demo", Family.ENV, "env-b1-f2-meeting")) is None
    assert directory.check(DeviceRef("demo", Family.ENV, "intruder")) == UNKNOWN_DEVICE
    newcomer = DeviceRef("depot", Family.PUMP, "p-1")
    assert directory.check(newcomer) is None
    assert store.auto_register_many(directory.drain_auto_registered(), T0) == 1
    assert directory.refresh_if_changed()
    assert len(directory) == 28
    assert directory.drain_auto_registered() == []


# --- the directory, over an in-memory source ------------------------------------------------


class FakeSource:
    def __init__(self, sites: Sequence[SiteSpec] = (), devices: Sequence[DeviceRecord] = ()) -> None:
        self.site_list, self.device_list = list(sites), list(devices)

    def sites(self) -> Sequence[SiteSpec]:
        return self.site_list

    def devices(self, site: str | None = None) -> Sequence[DeviceRecord]:
        return [d for d in self.device_list if site in (None, d.site)]

    def revision(self) -> Hashable:
        return (tuple(self.site_list), tuple(self.device_list))


def record(site: str, family: Family, device_id: str, interval: float | None = None) -> DeviceRecord:
    return DeviceRecord(site, family, device_id, report_interval_s=interval,
                        registered_by="inventory", created_at=T0, updated_at=T0)


@pytest.fixture
def source() -> FakeSource:
    return FakeSource(
        [SiteSpec("closed"), SiteSpec("open", auto_register=True)],
        [record("closed", Family.METER, "m1", interval=60.0), record("open", Family.ENV, "e1")],
    )


def test_known_unknown_device_and_unknown_site(source: FakeSource) -> None:
    directory = DeviceDirectory(source)
    assert not directory.is_open
    assert directory.check(DeviceRef("closed", Family.METER, "m1")) is None
    assert directory.check(DeviceRef("closed", Family.METER, "m2")) == UNKNOWN_DEVICE
    assert directory.check(DeviceRef("closed", Family.ENV, "m1")) == UNKNOWN_DEVICE  # same id, other family
    assert directory.check(DeviceRef("elsewhere", Family.METER, "m1")) == UNKNOWN_SITE
    assert directory.drain_auto_registered() == []


def test_auto_registration_queues_each_device_once(source: FakeSource) -> None:
    directory = DeviceDirectory(source)
    newcomer = DeviceRef("open", Family.GAS, "g1")
    assert [directory.check(newcomer) for _ in range(3)] == [None, None, None]
    directory.refresh()  # not persisted yet: still accepted, still queued
    assert directory.check(newcomer) is None
    assert directory.drain_auto_registered() == [newcomer]
    assert directory.drain_auto_registered() == []
    assert directory.check(newcomer) is None


def test_an_empty_registry_accepts_everything() -> None:
    directory = DeviceDirectory(FakeSource())
    assert directory.is_open
    assert directory.check(DeviceRef("any", Family.PUMP, "p1")) is None
    assert directory.drain_auto_registered() == []  # open mode registers nothing
    assert directory.report_interval(DeviceRef("any", Family.PUMP, "p1")) == DEFAULT_REPORT_INTERVAL_S[Family.PUMP]


def test_report_interval_override_and_family_default(source: FakeSource) -> None:
    directory = DeviceDirectory(source)
    assert directory.report_interval(DeviceRef("closed", Family.METER, "m1")) == 60.0
    assert directory.report_interval(DeviceRef("open", Family.ENV, "e1")) == DEFAULT_REPORT_INTERVAL_S[Family.ENV]
    assert directory.report_interval(DeviceRef("x", Family.ELEVATOR, "l1")) == 30.0


def test_refresh_sees_new_devices_and_sites(source: FakeSource) -> None:
    directory = DeviceDirectory(source)
    late = DeviceRef("late", Family.ENV, "e9")
    assert directory.check(late) == UNKNOWN_SITE
    source.site_list.append(SiteSpec("late"))
    source.device_list.append(record("late", Family.ENV, "e9", interval=10.0))
    assert directory.refresh_if_changed()
    assert not directory.refresh_if_changed()
    assert directory.check(late) is None
    assert directory.report_interval(late) == 10.0


def test_the_directory_knows_the_devices_behind_each_gateway(state_db: StateDatabase, example: Inventory) -> None:
    """What presence needs when a gateway's Will fires: every device of the inventory behind it."""
    RegistryStore(state_db).apply(example, T0)
    directory = DeviceDirectory(RegistryStore(state_db))
    site = example.sites[0].site
    behind = {g.gateway_id: set(directory.devices_behind(site, g.gateway_id)) for g in example.gateways}
    expected = {g.gateway_id: {d.ref for d in example.devices if d.gateway_id == g.gateway_id}
                for g in example.gateways}
    assert behind == expected
    assert DeviceRef(site, Family.FIRE_PANEL, "fp-b1") in behind["gw-b1"]
    assert directory.devices_behind(site, "no-such-gateway") == ()
    assert set(directory.devices(site)) == {d.ref for d in example.devices}
    assert directory.devices("other-site") == []
