"""Inhibition from the topology through the real rule engine and alarm service, on SQLite and PostgreSQL.

`Plant` is a small estate in the registry: building b2 behind gateway gw-b2 (with fire panel fp-b2
owning a gas detector of its own), building b1 behind gw-b1. Time moves by setting a fake clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from alarms.events import AlarmEvent
from alarms.incidents import IncidentGrouper
from alarms.inhibit import Inhibitor, children_of, children_view, tag, visible
from alarms.service import AlarmService
from core.clock import FakeClock
from core.domain import DeviceRef, Event, Family, MetricValue, Reading
from ingest.presence import Cause, PresenceEvent
from ingest.registry import DeviceDirectory
from rules.engine import RuleEngine
from rules.loader import default_rules
from rules.model import Rule, Source
from storage.state.database import StateDatabase
from storage.state.models import Alarm, AuditEntry, Incident
from storage.state.registry import BuildingSpec, DeviceSpec, GatewaySpec, Inventory, RegistryStore, SiteSpec, ZoneSpec

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
SITE = "s1"
RULES = default_rules()
ZONES = {"b1": ("b1-f1-z1", "b1-lift-1", "b1-plant"),
         "b2": ("b2-plant", "b2-f1-z1", "b2-lift-1", "b2-lift-2", "b2-pump", "b2-kitchen")}
DEVICES = (  # family, id, kind, building, zone, gateway
    (Family.METER, "em-b2-main", "electric", "b2", "b2-plant", "gw-b2"),
    (Family.ELEVATOR, "el-b2-1", "passenger", "b2", "b2-lift-1", "gw-b2"),
    (Family.ELEVATOR, "el-b2-2", "passenger", "b2", "b2-lift-2", "gw-b2"),
    (Family.GAS, "gd-b2-canteen", "lel", "b2", "b2-f1-z1", "gw-b2"),
    (Family.ENV, "env-b2-lobby", "indoor", "b2", "b2-f1-z1", "gw-b2"),
    (Family.PUMP, "pump-b2-1", "domestic_water", "b2", "b2-pump", "gw-b2"),
    (Family.FIRE_PANEL, "fp-b2", "", "b2", "b2-f1-z1", "gw-b2"),
    (Family.GAS, "gd-b2-kitchen", "lel", "b2", "b2-kitchen", "fp-b2"),
    (Family.ELEVATOR, "el-b1-1", "passenger", "b1", "b1-lift-1", "gw-b1"),
    (Family.METER, "em-b1-main", "electric", "b1", "b1-plant", "gw-b1"),
)


def inventory(extra: tuple[DeviceSpec, ...] = (), zones: tuple[ZoneSpec, ...] = ()) -> Inventory:
    return Inventory(
        source="test",
        sites=(SiteSpec(SITE),),
        buildings=tuple(BuildingSpec(SITE, b) for b in ZONES),
        zones=tuple(ZoneSpec(SITE, b, z) for b, zs in ZONES.items() for z in zs) + zones,
        gateways=(GatewaySpec(SITE, "gw-b1", building_id="b1"), GatewaySpec(SITE, "gw-b2", building_id="b2"),
                  GatewaySpec(SITE, "fp-b2", kind="fire_panel", building_id="b2", zone_id="b2-f1-z1")),
        devices=tuple(DeviceSpec(SITE, f, d, k, b, z, g) for f, d, k, b, z, g in DEVICES) + extra,
    )


class Plant:
    """Registry, rule engine and alarm service with the inhibit and incident stages, on one database."""

    def __init__(self, db: StateDatabase, rules: list[Rule] = RULES, inv: Inventory | None = None) -> None:
        self.db = db
        RegistryStore(db).apply(inv or inventory(), T0)
        self.directory = DeviceDirectory(RegistryStore(db))
        self.clock = FakeClock(T0)
        self.engine = RuleEngine(rules, self.directory.zone_of, self.directory.kind_of)
        self.events: list[AlarmEvent] = []
        self.service = AlarmService(db, self.clock, self.events.append, self.locate,
                                    stages=(Inhibitor(), IncidentGrouper()))

    def locate(self, source: Source) -> tuple[str | None, str | None]:
        return self.directory.location(source.site, source.family, source.id)

    def at(self, seconds: float) -> Plant:
        self.clock.set(T0 + timedelta(seconds=seconds))
        self.service.apply(self.engine.tick(self.clock.now()))
        return self

    def device(self, device_id: str, online: bool) -> None:
        family = next(f for f, d, *_ in DEVICES if d == device_id)
        cause = Cause.REPORTED if online else Cause.SILENCE
        ref = DeviceRef(SITE, family, device_id)
        self.service.apply(self.engine.presence([PresenceEvent(SITE, online, cause, self.clock.now(), ref)]))

    def gateway(self, gateway_id: str, online: bool) -> None:
        event = PresenceEvent(SITE, online, Cause.STATUS, self.clock.now(), gateway_id=gateway_id)
        self.service.apply(self.engine.presence([event]))

    def read(self, family: Family, device_id: str, events: tuple[Event, ...] = (), **metrics: MetricValue) -> None:
        reading = Reading(DeviceRef(SITE, family, device_id), self.clock.now(), metrics, events=events)
        self.service.apply(self.engine.process([reading]))

    def alarm(self, rule_id: str, device_id: str, *, newest: bool = True) -> Alarm:
        with self.db.session() as session:
            query = select(Alarm).where(Alarm.rule_id == rule_id, Alarm.device_id == device_id)
            rows = list(session.scalars(query.order_by(Alarm.id)))
        assert rows, f"no alarm {rule_id} on {device_id}"
        return rows[-1] if newest else rows[0]

    def shown(self) -> set[tuple[str, str]]:
        """(rule, device) of the open alarms the console shows (suppressed=false)."""
        with self.db.session() as session:
            query = select(Alarm.rule_id, Alarm.device_id).where(Alarm.state != "normal", visible())
            return {(r, d) for r, d in session.execute(query).tuples()}

    def audit(self, alarm: Alarm, action: str) -> list[AuditEntry]:
        with self.db.session() as session:
            return list(session.scalars(select(AuditEntry).where(
                AuditEntry.entity_id == str(alarm.id), AuditEntry.entity_type == "alarm",
                AuditEntry.action == action).order_by(AuditEntry.id)))

    def incidents(self) -> list[Incident]:
        with self.db.session() as session:
            return list(session.scalars(select(Incident).order_by(Incident.id)))


B2_OFFLINE = ("el-b2-1", "el-b2-2", "env-b2-lobby", "pump-b2-1", "em-b2-main", "fp-b2")
OFFLINE_RULE = {"meter": "comms.meter_offline", "elevator": "comms.elevator_offline", "gas": "comms.gas_offline",
                "env": "comms.env_offline", "pump": "comms.pump_offline", "fire_panel": "comms.fire_panel_offline"}


def offline_alarm(plant: Plant, device_id: str) -> Alarm:
    family = next(f for f, d, *_ in DEVICES if d == device_id)
    return plant.alarm(OFFLINE_RULE[family.value], device_id)


def test_gateway_offline_suppresses_its_devices_and_restores_them(state_db: StateDatabase) -> None:
    plant = Plant(state_db)
    plant.device("gd-b2-canteen", online=False)  # silent before the gateway's Will is noticed
    plant.at(30).gateway("gw-b2", online=False)
    plant.at(60).device("el-b1-1", online=False)  # another gateway's device: not a child
    plant.at(120)
    assert plant.shown() == {("comms.gas_offline", "gd-b2-canteen")}
    plant.at(150)  # the gateway's alarm: adopts the canteen detector's alarm raised before it
    parent = plant.alarm("comms.gateway_offline", "gw-b2")
    assert offline_alarm(plant, "gd-b2-canteen").suppressed_by == tag(parent.id)
    plant.at(200)
    for device_id in B2_OFFLINE:
        plant.device(device_id, online=False)
    plant.at(210).device("gd-b2-kitchen", online=False)
    plant.at(320)  # the panel's alarm (its on-delay ends first)
    plant.at(330)

    children = [offline_alarm(plant, d) for d in ("gd-b2-canteen", *B2_OFFLINE)]
    assert all((c.parent_id, c.suppressed_by, c.state) == (parent.id, tag(parent.id), "unack") for c in children)
    kitchen = offline_alarm(plant, "gd-b2-kitchen")  # behind the fire panel, whose own alarm is its parent
    assert kitchen.suppressed_by == tag(offline_alarm(plant, "fp-b2").id)
    assert plant.shown() == {("comms.gateway_offline", "gw-b2"), ("comms.elevator_offline", "el-b1-1")}
    with state_db.session() as session:
        assert [c.id for c in children_of(session, parent.id)] == sorted(c.id for c in children)
        assert {v["device_id"] for v in children_view(session, parent.id)} == {"gd-b2-canteen", *B2_OFFLINE}
    raised_hidden = {e.alarm["device_id"] for e in plant.events if e.event == "raised" and e.alarm["suppressed_by"]}
    assert raised_hidden == {*B2_OFFLINE, "gd-b2-kitchen"}  # published already marked: notifiers can skip them
    assert [a.detail["activation"] for a in plant.audit(children[0], "alarm.suppressed")] == [None]  # adopted
    assert [a.detail["activation"] for a in plant.audit(children[1], "alarm.suppressed")] == ["raise"]

    plant.at(400).device("env-b2-lobby", online=True)  # back while the gateway is still offline
    lobby = offline_alarm(plant, "env-b2-lobby")
    assert (lobby.state, lobby.suppressed_by, lobby.parent_id) == ("normal", None, parent.id)

    plant.at(600).gateway("gw-b2", online=True)
    assert plant.alarm("comms.gateway_offline", "gw-b2").state == "rtn_unack"
    restored = [offline_alarm(plant, d) for d in ("gd-b2-canteen", "el-b2-1", "el-b2-2", "pump-b2-1", "em-b2-main",
                                                  "fp-b2")]
    assert all((r.state, r.suppressed_by, r.parent_id) == ("unack", None, parent.id) for r in restored)
    assert offline_alarm(plant, "env-b2-lobby").state == "normal"
    assert offline_alarm(plant, "gd-b2-kitchen").suppressed_by == tag(offline_alarm(plant, "fp-b2").id)
    updated = [e.alarm["device_id"] for e in plant.events if e.event == "updated"]
    assert set(updated) >= {"gd-b2-canteen", "el-b2-1", "el-b2-2", "pump-b2-1", "em-b2-main", "fp-b2"}

    plant.at(660).device("fp-b2", online=True)
    assert offline_alarm(plant, "gd-b2-kitchen").suppressed_by is None
    assert ("comms.gas_offline", "gd-b2-kitchen") in plant.shown()


def test_power_outage_hides_lift_and_pump_consequences_of_that_building_only(state_db: StateDatabase) -> None:
    plant = Plant(state_db)
    plant.read(Family.ELEVATOR, "el-b2-2", power_ok=False, fault_code=11)  # before the meter's alarm
    plant.at(5).read(Family.METER, "em-b2-main", voltage_v=0.0)
    outage = plant.alarm("meter.voltage_lost", "em-b2-main")
    plant.read(Family.ELEVATOR, "el-b2-1", power_ok=False, alarm_button=True)
    plant.read(Family.PUMP, "pump-b2-1", events=(Event("trip"),))
    plant.read(Family.ELEVATOR, "el-b1-1", power_ok=False)  # building 1 has power: a real fault there
    plant.read(Family.FIRE_PANEL, "fp-b2", mains_fault=True)

    hidden = {("elevator.power_lost", "el-b2-1"), ("elevator.power_lost", "el-b2-2"), ("pump.trip", "pump-b2-1")}
    for rule_id, device_id in hidden:
        child = plant.alarm(rule_id, device_id)
        assert (child.parent_id, child.suppressed_by) == (outage.id, tag(outage.id)), (rule_id, device_id)
    assert plant.shown() == {("meter.voltage_lost", "em-b2-main"), ("elevator.entrapment", "el-b2-2"),
                             ("elevator.alarm_button", "el-b2-1"), ("elevator.power_lost", "el-b1-1"),
                             ("fire.mains_fault", "fp-b2")}

    [power_b2] = [i for i in plant.incidents() if i.cause == "power" and i.building == "b2"]
    assert (power_b2.alarm_count, power_b2.state, power_b2.zone, power_b2.playbook) == (5, "open", None, "power-outage")

    plant.at(60).read(Family.ELEVATOR, "el-b2-1", power_ok=True)  # lift 1 back on its own: never shown
    assert plant.alarm("elevator.power_lost", "el-b2-1").state == "normal"
    plant.at(120).read(Family.METER, "em-b2-main", voltage_v=230.0)
    lift2, pump = plant.alarm("elevator.power_lost", "el-b2-2"), plant.alarm("pump.trip", "pump-b2-1")
    assert (lift2.state, lift2.suppressed_by, pump.state, pump.suppressed_by) == ("unack", None, "unack", None)
    assert plant.alarm("elevator.power_lost", "el-b2-1").state == "normal"


def test_a_child_escalated_to_an_emergency_is_shown_again(state_db: StateDatabase) -> None:
    """Only general (grade 3-4) consequences are hidden: once it escalates to an emergency it is shown."""
    pressure_low = Rule.model_validate({
        "id": "pump.test_pressure_low", "family": "pump", "category": "equipment", "grade": 3,
        "condition": {"kind": "threshold", "metric": "pressure_kpa", "op": "<", "limit": 100},
        "escalate": [{"after": "10m", "grade": 2}], "playbook": "equipment-failure",
        "message_zh": "压力低", "message_en": "pressure low", "cite": "test"})
    meter = next(r for r in RULES if r.id == "meter.voltage_lost")
    plant = Plant(state_db, rules=[pressure_low, meter])
    plant.read(Family.METER, "em-b2-main", voltage_v=0.0)
    plant.read(Family.PUMP, "pump-b2-1", pressure_kpa=20.0)
    outage = plant.alarm("meter.voltage_lost", "em-b2-main")
    assert plant.alarm("pump.test_pressure_low", "pump-b2-1").suppressed_by == tag(outage.id)
    plant.at(600)
    pump = plant.alarm("pump.test_pressure_low", "pump-b2-1")
    assert (pump.grade, pump.suppressed_by, pump.parent_id) == (2, None, outage.id)
    assert [a.reason for a in plant.audit(pump, "alarm.unsuppressed")] == [
        "no longer a consequence of its parent (e.g. escalated)"]
