"""A simulated site: its devices, which gateway each sits behind, and the demo estate.

`Site` is topology plus device models; it does no I/O. The engine (`simulators.engine`) runs
a site over time and the runner (`simulators.runner`) publishes it over MQTT, one connection
per gateway, as real gateways do.

The demo estate (`demo_estate`) is a small mixed-use property with every device family: an
office tower (b1), a residential tower with a canteen (b2), and a plant room.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

import orjson

from core.domain import DeviceRef, Family
from core.schema import MeterKind
from core.topics import telemetry_topic
from simulators.models import (
    DeviceModel,
    ElevatorModel,
    EnvSensor,
    FirePanelModel,
    GasDetectorModel,
    MeterModel,
    PumpModel,
)
from simulators.models.curves import Weather
from simulators.models.elevator import Traffic
from simulators.models.env import crowded, lobby_occupancy, office_occupancy
from simulators.models.gas import Location
from simulators.models.meter import Profile
from simulators.models.pump import Role
from simulators.payloads import reading_body
from simulators.timebase import CHINA_TZ

MEETING_ROOM = "env-b1-f2-meeting"  # crowded from the start: the demo's first alarm (CO2 > 1000 ppm)


@dataclass
class SimDevice:
    """One device of a site: its model, its gateway, where it is, and its `seq` counter."""

    model: DeviceModel
    gateway_id: str
    building: str | None = None
    zone: str | None = None
    name_zh: str = ""
    seq: int = 0

    @property
    def ref(self) -> DeviceRef:
        return self.model.device

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


@dataclass
class Site:
    """The devices of one site, by device id (ids are unique within a site)."""

    site_id: str
    seed: int
    tz: tzinfo
    devices: dict[str, SimDevice] = field(default_factory=dict)

    @property
    def gateways(self) -> list[str]:
        return sorted({d.gateway_id for d in self.devices.values()})

    def device(self, device_id: str) -> SimDevice:
        try:
            return self.devices[device_id]
        except KeyError:
            raise KeyError(f"site {self.site_id} has no device {device_id!r}") from None

    def on_gateway(self, gateway_id: str) -> list[SimDevice]:
        return [d for d in self.devices.values() if d.gateway_id == gateway_id]

    def only(self, device_ids: Iterable[str]) -> Site:
        """A site with just these devices (same models, so the same values)."""
        wanted = set(device_ids)
        return Site(self.site_id, self.seed, self.tz, {k: v for k, v in self.devices.items() if k in wanted})

    def messages(self, ts: datetime) -> list[tuple[str, bytes]]:
        """A reading from *every* device at `ts`, as (topic, payload), ignoring report intervals.

        For tests and tools that publish a site's data themselves; the engine schedules
        devices on their own intervals.
        """
        out = []
        for device in self.devices.values():
            sample = device.model.sample(ts)
            body = reading_body(ts, device.next_seq(), sample.metrics, sample.events)
            out.append((telemetry_topic(device.ref), orjson.dumps(body)))
        return out


# --- the demo estate ----------------------------------------------------------------------------

Builder = Callable[[DeviceRef, int, Weather], DeviceModel]


def _env(occupancy: Callable[[datetime], float] = office_occupancy, outdoor: bool = False) -> Builder:
    return lambda ref, seed, weather: EnvSensor(ref, seed=seed, weather=weather, occupancy=occupancy, outdoor=outdoor)


def _meter(kind: MeterKind, profile: Profile, rated: float) -> Builder:
    return lambda ref, seed, weather: MeterModel(ref, seed=seed, weather=weather, kind=kind, profile=profile,
                                                 rated=rated)


def _lift(floors: tuple[int, int], traffic: Traffic, peak: float) -> Builder:
    return lambda ref, seed, weather: ElevatorModel(ref, seed=seed, weather=weather, floors=floors,
                                                    traffic=traffic, peak_trips_per_hour=peak)


def _panel(building: str, floors: tuple[int, int]) -> Builder:
    return lambda ref, seed, weather: FirePanelModel(ref, seed=seed, weather=weather, building=building, floors=floors)


def _gas(location: Location) -> Builder:
    return lambda ref, seed, weather: GasDetectorModel(ref, seed=seed, weather=weather, location=location)


def _pump(role: Role, duty_week: int | None = None) -> Builder:
    return lambda ref, seed, weather: PumpModel(ref, seed=seed, weather=weather, role=role, duty_week=duty_week)


B1_FLOORS, B2_FLOORS = (-1, 12), (-1, 18)

# (device id, family, gateway, building, zone, name, model)
DEMO_ESTATE: tuple[tuple[str, Family, str, str | None, str | None, str, Builder], ...] = (
    ("env-b1-f1-lobby", Family.ENV, "gw-b1", "b1", "b1-f1-z1", "1号楼大堂", _env(lobby_occupancy)),
    ("env-b1-f2-office", Family.ENV, "gw-b1", "b1", "b1-f2-z1", "1号楼2层办公室", _env()),
    ("env-b1-f3-office", Family.ENV, "gw-b1", "b1", "b1-f3-z1", "1号楼3层办公室", _env()),
    (MEETING_ROOM, Family.ENV, "gw-b1", "b1", "b1-f2-z1", "1号楼2层会议室", _env(crowded(18))),
    ("env-b2-f1-lobby", Family.ENV, "gw-b2", "b2", "b2-f1-z1", "2号楼大堂", _env(lobby_occupancy)),
    ("env-b2-f2-office", Family.ENV, "gw-b2", "b2", "b2-f2-z1", "2号楼物业服务中心", _env()),
    ("env-outdoor", Family.ENV, "gw-plant", None, None, "室外环境监测站", _env(outdoor=True)),
    ("el-b1-1", Family.ELEVATOR, "gw-b1", "b1", None, "1号楼1号客梯", _lift(B1_FLOORS, "office", 120)),
    ("el-b1-2", Family.ELEVATOR, "gw-b1", "b1", None, "1号楼2号客梯", _lift(B1_FLOORS, "office", 100)),
    ("el-b2-1", Family.ELEVATOR, "gw-b2", "b2", None, "2号楼1号客梯", _lift(B2_FLOORS, "residential", 90)),
    ("el-b2-2", Family.ELEVATOR, "gw-b2", "b2", None, "2号楼2号客梯", _lift(B2_FLOORS, "residential", 80)),
    ("fp-b1", Family.FIRE_PANEL, "gw-b1", "b1", "b1-f1-z1", "1号楼火灾报警控制器", _panel("b1", B1_FLOORS)),
    ("fp-b2", Family.FIRE_PANEL, "gw-b2", "b2", "b2-f1-z1", "2号楼火灾报警控制器", _panel("b2", B2_FLOORS)),
    ("em-b1-main", Family.METER, "gw-b1", "b1", None, "1号楼总电表", _meter(MeterKind.ELECTRIC, "office", 420)),
    ("em-b2-main", Family.METER, "gw-b2", "b2", None, "2号楼总电表", _meter(MeterKind.ELECTRIC, "residential", 260)),
    ("wm-b1-main", Family.METER, "gw-b1", "b1", None, "1号楼总水表", _meter(MeterKind.WATER, "office", 6)),
    ("wm-b2-main", Family.METER, "gw-b2", "b2", None, "2号楼总水表", _meter(MeterKind.WATER, "residential", 12)),
    ("gm-b2-canteen", Family.METER, "gw-b2", "b2", "b2-f1-z1", "2号楼食堂燃气表",
     _meter(MeterKind.GAS, "canteen", 8)),
    ("hm-b2-main", Family.METER, "gw-b2", "b2", None, "2号楼热量表", _meter(MeterKind.HEAT, "district_heating", 25)),
    ("gd-b2-canteen", Family.GAS, "gw-b2", "b2", "b2-f1-z1", "2号楼食堂可燃气体探测器", _gas("kitchen")),
    ("gd-b1-garage", Family.GAS, "gw-b1", "b1", "b1-fB1-z1", "1号楼地库CO探测器", _gas("garage")),
    ("pump-supply-1", Family.PUMP, "gw-plant", None, None, "生活水泵1#", _pump("supply", 0)),
    ("pump-supply-2", Family.PUMP, "gw-plant", None, None, "生活水泵2#", _pump("supply", 1)),
    ("pump-fire-1", Family.PUMP, "gw-plant", None, None, "消防泵1#", _pump("fire")),
    ("pump-sump-1", Family.PUMP, "gw-plant", None, None, "地库集水井排污泵", _pump("sump")),
    ("fan-b1-garage", Family.PUMP, "gw-b1", "b1", "b1-fB1-z1", "1号楼地库排风机", _pump("fan")),
)
INDOOR_AIR = tuple(row[0] for row in DEMO_ESTATE if row[1] is Family.ENV and row[0] != "env-outdoor")


def demo_estate(site: str = "demo", seed: int = 1, *, tz: tzinfo = CHINA_TZ,
                interval_s: float | None = None) -> Site:
    """The demo property with all six families; `interval_s` overrides every report interval."""
    weather = Weather(seed, tz)
    estate = Site(site, seed, tz)
    for device_id, family, gateway, building, zone, name, build in DEMO_ESTATE:
        model = build(DeviceRef(site, family, device_id), seed, weather)
        if interval_s is not None:
            model.interval_s = interval_s
        estate.devices[device_id] = SimDevice(model, gateway, building, zone, name)
    return estate


def demo_site(site: str = "demo", seed: int = 1) -> Site:
    """The demo estate's six indoor air sensors only, one of them the crowded meeting room.

    Kept for tests/test_end_to_end.py, which publishes `messages()` of these six sensors and
    counts one reading in six as the meeting room's. `fmon demo` runs the whole estate.
    """
    return demo_estate(site, seed).only(INDOOR_AIR)
