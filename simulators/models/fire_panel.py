"""A fire alarm control panel with linkage (GB/T 26875.3 status bits, GB 50116 linkage).

The panel owns addressed points: per floor a zone with smoke and heat detectors, a manual call
point, a water-flow indicator, a sounder output and a fire shutter; per building the smoke
exhaust and pressurisation fans, the fire pump, the lift-recall and non-fire-power-cut outputs.
Its reading carries the panel status bits; each point change is an event with the point's loop,
address, zone and component type (`core.schema.FIRE_COMPONENT_TYPES`).

Left alone a panel is quiet: now and then a detector reports a fault (dust, a loose base) that
clears after some hours, and rarely a single smoke detector raises a false alarm that the duty
operator resets within minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from core.domain import Family, MetricValue
from simulators.models.base import ActionError, DeviceModel, NoParams, Params, Table

Detector = Literal["smoke", "heat", "manual_call_point", "water_flow"]
Output = Literal["sounder", "shutter", "smoke_fan", "pressurisation_fan", "fire_pump", "elevator_recall", "power_cut"]
COMPONENT_TYPES: dict[str, int] = {
    "smoke": 40, "heat": 30, "manual_call_point": 23, "water_flow": 96, "sounder": 86, "shutter": 117,
    "smoke_fan": 111, "pressurisation_fan": 111, "fire_pump": 91, "elevator_recall": 86, "power_cut": 86,
}
_NAMES_ZH = {
    "smoke": "感烟探测器", "heat": "感温探测器", "manual_call_point": "手动报警按钮", "water_flow": "水流指示器",
    "sounder": "声光警报器", "shutter": "防火卷帘", "smoke_fan": "排烟风机", "pressurisation_fan": "正压送风机",
    "fire_pump": "消防泵", "elevator_recall": "电梯迫降模块", "power_cut": "切非模块",
}
_FLOOR_POINTS: tuple[tuple[str, int], ...] = (
    ("smoke", 3), ("heat", 1), ("manual_call_point", 1), ("water_flow", 1), ("sounder", 1), ("shutter", 1))
_BUILDING_OUTPUTS = ("smoke_fan", "pressurisation_fan", "fire_pump", "elevator_recall", "power_cut")
FAULTS_PER_DAY = 0.25
FALSE_ALARMS_PER_DAY = 1 / 60


def floor_label(floor: int) -> str:
    return f"B{-floor}" if floor < 0 else str(floor)


@dataclass
class Point:
    loop: int
    address: int
    zone: str
    component: str
    description: str
    fire: bool = False
    fault: bool = False
    started: bool = False
    feedback: bool = False

    @property
    def is_detector(self) -> bool:
        return self.component in ("smoke", "heat", "manual_call_point", "water_flow")

    def attrs(self) -> dict[str, int | str]:
        return {"loop": self.loop, "address": self.address, "zone": self.zone,
                "component_type": COMPONENT_TYPES[self.component], "description": self.description}


class DetectorAlarmParams(Params):
    zone: str
    component: Detector = "smoke"
    count: int = Field(1, ge=1)


class LinkageParams(Params):
    zone: str
    outputs: list[Output] = Field(min_length=1)


class PointFaultParams(Params):
    zone: str
    component: Detector = "smoke"


class ModeParams(Params):
    auto: bool


class FirePanelModel(DeviceModel):
    family = Family.FIRE_PANEL
    ACTIONS: ClassVar[Table] = {
        "detector_alarm": DetectorAlarmParams, "linkage_start": LinkageParams, "linkage_feedback": LinkageParams,
        "point_fault": PointFaultParams, "reset": NoParams,
    }
    COMMANDS: ClassVar[Table] = {"reset": NoParams, "silence": NoParams, "set_mode": ModeParams}

    def __init__(self, *args: Any, building: str, floors: tuple[int, int] = (-1, 12), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.building = building
        self.points = _build_points(building, floors)
        self.auto = True
        self._fault_clears: dict[int, datetime] = {}  # point index -> when its fault clears
        self._false_reset: datetime | None = None
        self._next_fault: datetime | None = None
        self._next_false: datetime | None = None
        self._t: datetime | None = None

    def zones(self) -> set[str]:
        return {p.zone for p in self.points}

    # --- background behaviour ----------------------------------------------------------------

    def next_change(self) -> datetime | None:
        times = [t for t in (self._next_fault, self._next_false, self._false_reset, *self._fault_clears.values()) if t]
        return min(times, default=None)

    def _advance(self, ts: datetime) -> None:
        if self._t is None:
            self._t = ts
            self._next_fault = ts + self._gap(FAULTS_PER_DAY)
            self._next_false = ts + self._gap(FALSE_ALARMS_PER_DAY)
        for index, when in sorted(self._fault_clears.items(), key=lambda item: item[1]):
            if when <= ts:
                del self._fault_clears[index]
                self.points[index].fault = False
                self.emit("point_clear", **self.points[index].attrs())
        if self._false_reset is not None and self._false_reset <= ts:
            self._false_reset = None
            self._reset()
        if self._next_fault is not None and self._next_fault <= ts:
            self._random_fault(self._next_fault)
            self._next_fault = self._next_fault + self._gap(FAULTS_PER_DAY)
        if self._next_false is not None and self._next_false <= ts:
            self._false_alarm(self._next_false)
            self._next_false = self._next_false + self._gap(FALSE_ALARMS_PER_DAY)
        self._t = ts

    def _gap(self, per_day: float) -> timedelta:
        return timedelta(days=self.rng.expovariate(per_day))

    def _random_fault(self, when: datetime) -> None:
        candidates = [i for i, p in enumerate(self.points) if p.is_detector and not p.fault and not p.fire]
        index = self.rng.choice(candidates)
        self.points[index].fault = True
        self._fault_clears[index] = when + timedelta(hours=self.rng.uniform(1, 12))
        self.emit("point_fault", **self.points[index].attrs())

    def _false_alarm(self, when: datetime) -> None:
        smoke = [p for p in self.points if p.component == "smoke" and not p.fire and not p.fault]
        point = self.rng.choice(smoke)
        point.fire = True
        self.emit("point_fire", **point.attrs())
        self._false_reset = when + timedelta(minutes=self.rng.uniform(4, 15))  # duty operator checks, resets

    # --- sampling ------------------------------------------------------------------------------

    def _sample(self, ts: datetime) -> dict[str, MetricValue]:
        self._advance(ts)
        return {
            "fire": any(p.fire for p in self.points),
            "fault": any(p.fault for p in self.points),
            "disabled": False, "supervisory": False,
            "start": any(p.started for p in self.points),
            "feedback": any(p.feedback for p in self.points),
            "mains_fault": False, "battery_fault": False, "bus_fault": False,
            "auto": self.auto,
        }

    # --- scenario actions ----------------------------------------------------------------------

    def parse_action(self, name: str, raw: Any) -> Params:
        params = super().parse_action(name, raw)
        zone = getattr(params, "zone", None)
        if zone is not None and zone not in self.zones():
            examples = ", ".join(sorted(self.zones())[:4])
            raise ActionError("zone", f"{self.device.device_id} has no zone {zone!r} (zones look like {examples})")
        if isinstance(params, LinkageParams):
            missing = [o for o in params.outputs if not self._outputs(params.zone, o)]
            if missing:
                raise ActionError("outputs", f"{self.device.device_id} has no {', '.join(missing)} for {params.zone}")
        return params

    def act_detector_alarm(self, params: DetectorAlarmParams, ts: datetime) -> None:
        self._advance(ts)
        idle = [p for p in self.points if p.zone == params.zone and p.component == params.component and not p.fire]
        for point in idle[: params.count]:
            point.fire = True
            self.emit("point_fire", **point.attrs())

    def act_linkage_start(self, params: LinkageParams, ts: datetime) -> None:
        self._advance(ts)
        for point in self._linkage_points(params):
            point.started = True
            self.emit("point_start", **point.attrs())

    def act_linkage_feedback(self, params: LinkageParams, ts: datetime) -> None:
        self._advance(ts)
        for point in self._linkage_points(params):
            point.feedback = True
            self.emit("point_feedback", **point.attrs())

    def act_point_fault(self, params: PointFaultParams, ts: datetime) -> None:
        self._advance(ts)
        for point in self.points:
            if point.zone == params.zone and point.component == params.component and not point.fault:
                point.fault = True
                self.emit("point_fault", **point.attrs())
                return

    def act_reset(self, _params: NoParams, ts: datetime) -> None:
        self._advance(ts)
        self._reset()

    def _linkage_points(self, params: LinkageParams) -> list[Point]:
        return [p for output in params.outputs for p in self._outputs(params.zone, output)]

    def _outputs(self, zone: str, output: str) -> list[Point]:
        """Floor outputs of the fire's zone; building outputs wherever the fire is."""
        if output in _BUILDING_OUTPUTS:
            return [p for p in self.points if p.component == output]
        return [p for p in self.points if p.component == output and p.zone == zone]

    def _reset(self) -> None:
        for point in self.points:
            point.fire = point.started = point.feedback = False
        self._false_reset = None
        self.emit("reset")

    # --- commands ------------------------------------------------------------------------------

    def cmd_reset(self, _params: NoParams, ts: datetime) -> None:
        self._advance(ts)
        self._reset()

    def cmd_silence(self, _params: NoParams, _ts: datetime) -> None:
        self.emit("silence")

    def cmd_set_mode(self, params: ModeParams, _ts: datetime) -> None:
        self.auto = params.auto


def _build_points(building: str, floors: tuple[int, int]) -> list[Point]:
    points: list[Point] = []
    addresses: dict[int, int] = {}

    def add(loop: int, zone: str, component: str, where: str) -> None:
        addresses[loop] = addresses.get(loop, 0) + 1
        points.append(Point(loop, addresses[loop], zone, component, f"{where} {_NAMES_ZH[component]}"))

    for index, floor in enumerate(f for f in range(floors[0], floors[1] + 1) if f != 0):
        loop = 1 + index // 4  # four floors per loop keeps each loop far below 200 points
        zone = f"{building}-f{floor_label(floor)}-z1"
        for component, count in _FLOOR_POINTS:
            for n in range(count):
                add(loop, zone, component, f"{floor_label(floor)}F {n + 1}#" if count > 1 else f"{floor_label(floor)}F")
    plant_loop = max(addresses) + 1
    for component in _BUILDING_OUTPUTS:
        add(plant_loop, f"{building}-plant", component, f"{building} 设备层")
    return points
