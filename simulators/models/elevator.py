"""A lift (GB/T 24476 real-time status, statistics and fault codes).

Trips arrive as a Poisson process whose rate follows the building's traffic: a residential
morning down-peak and evening up-peak, an office up-peak at 8:30 and down-peak at 17:45, quiet
nights. Each trip departs, travels (about 1.8 s a floor), opens its doors, dwells and closes;
run and door-cycle counters grow with every trip. The state at a sample time is read off the
trip in progress. Wear (a scenario's `degrade`) raises motor current, vibration, levelling
error and door re-openings, and ends in a fault.

Fault codes are `core.schema.ELEVATOR_FAULT_CODES` (11 = entrapment).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from core.domain import Family, MetricValue
from core.schema import ELEVATOR_FAULT_CODES
from simulators.models.base import ActionError, CommandRejected, DeviceModel, Duration, NoParams, Params, Table
from simulators.models.curves import Peak, hour_of_day, is_workday, peaks, plateau

Traffic = Literal["residential", "office"]
DOOR_OPENING_S, DOOR_CLOSING_S = 2.5, 3.0
ENTRAPMENT = 11
_DOOR_CLOSE_FAULT = 2

_RESIDENTIAL = (Peak(7.6, 0.7, 1.0), Peak(12.2, 1.0, 0.35), Peak(18.7, 1.1, 0.9))
_RESIDENTIAL_WEEKEND = (Peak(9.5, 1.5, 0.6), Peak(17.5, 2.0, 0.6))
_OFFICE = (Peak(8.5, 0.5, 1.0), Peak(12.0, 0.7, 0.6), Peak(17.8, 0.6, 0.9))


def traffic_shape(traffic: Traffic, local_ts: datetime) -> float:
    """Relative trip rate (peak = 1) of a building type at a local time."""
    hour = hour_of_day(local_ts)
    if traffic == "office":
        if not is_workday(local_ts):
            return 0.05
        return peaks(hour, _OFFICE, 0.02) + 0.25 * plateau(hour, 8.5, 18)
    return peaks(hour, _RESIDENTIAL if is_workday(local_ts) else _RESIDENTIAL_WEEKEND, 0.03)


@dataclass
class _Trip:
    depart: datetime
    origin: int
    dest: int
    loaded: bool
    dwell_s: float
    park: bool = False  # a recall: the car stays at `dest` with its doors open

    @property
    def travel_s(self) -> float:
        return 3.0 + 1.8 * abs(self.dest - self.origin)

    @property
    def arrive(self) -> datetime:
        return self.depart + timedelta(seconds=self.travel_s)

    @property
    def end(self) -> datetime:
        return self.arrive + timedelta(seconds=DOOR_OPENING_S + self.dwell_s + DOOR_CLOSING_S)


class EntrapmentParams(Params):
    between_floors: bool = True


class PressParams(Params):
    pressed: bool = True


class FaultParams(Params):
    code: int

    @field_validator("code")
    @classmethod
    def _known(cls, code: int) -> int:
        if code not in ELEVATOR_FAULT_CODES:
            raise ValueError(f"fault code {code} is not one of {sorted(ELEVATOR_FAULT_CODES)}")
        return code


class RecallParams(Params):
    floor: int | None = None
    mode: Literal["fire", "parking"] = "fire"


class PowerLossParams(Params):
    rescue_device: bool = True  # an ARD levels the car at the nearest floor and opens the doors
    entrap: bool = False


class DegradeParams(Params):
    over: Duration
    fail_with: int = Field(_DOOR_CLOSE_FAULT, ge=1, le=11)


class InspectionParams(Params):
    active: bool = True


class ElevatorModel(DeviceModel):
    family = Family.ELEVATOR
    ACTIONS: ClassVar[Table] = {
        "entrapment": EntrapmentParams, "alarm_button": PressParams, "release": NoParams,
        "return_to_service": NoParams, "fault": FaultParams, "clear_fault": NoParams, "recall": RecallParams,
        "power_loss": PowerLossParams, "power_restore": NoParams, "earthquake": NoParams,
        "degrade": DegradeParams, "repair": NoParams, "inspection": InspectionParams,
    }
    COMMANDS: ClassVar[Table] = {"recall": RecallParams, "out_of_service": NoParams, "return_to_service": NoParams}

    def __init__(self, *args: Any, floors: tuple[int, int] = (-1, 12), lobby: int = 1,
                 traffic: Traffic = "residential", peak_trips_per_hour: float = 60.0, rated_speed_ms: float = 1.75,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lowest, self.highest = floors
        self.lobby, self.traffic, self.peak_rate, self.rated_speed = lobby, traffic, peak_trips_per_hour, rated_speed_ms
        self.floor = lobby
        self.service_mode, self.fault_code = "normal", 0
        self.passenger = self.alarm_button = self.trapped_between_floors = False
        self.power_ok = True
        self.run_count = self.rng.randint(20_000, 400_000)
        self.door_cycles = int(self.run_count * 1.15)
        self.levelling_mm = 0.0
        self.door_idle = "closed"
        self._trip: _Trip | None = None
        self._next_trip: datetime | None = None
        self._t: datetime | None = None
        self._degrade: tuple[datetime, timedelta, int] | None = None
        self._wear = 0.0
        self._auto_clear: datetime | None = None

    # --- the trip process ------------------------------------------------------------------

    def next_change(self) -> datetime | None:
        failure = None if self._degrade is None else self._degrade[0] + self._degrade[1]
        return min((t for t in (failure, self._auto_clear) if t is not None), default=None)

    def in_service(self) -> bool:
        return self.service_mode == "normal" and self.fault_code == 0 and self.power_ok

    def _advance(self, ts: datetime) -> None:
        """Run trips up to `ts`."""
        if self._t is None:
            self._t = ts
        while True:
            self._update_wear(self._t if self._trip is None else self._trip.depart)
            if self._trip is None and not self._start_next_trip(ts):
                break
            assert self._trip is not None
            if self._trip.end > ts:
                break
            self._finish(self._trip)
        self._t = max(self._t, ts)
        self._update_wear(ts)
        if self._auto_clear is not None and ts >= self._auto_clear:
            self._auto_clear = None
            self._set_fault(0)
            self.emit("back_to_auto")

    def _start_next_trip(self, until: datetime) -> bool:
        if not self.in_service():
            self._next_trip = None
            return False
        assert self._t is not None
        if self._next_trip is None:
            rate = max(0.3, self.peak_rate * traffic_shape(self.traffic, self._t.astimezone(self.tz)))
            self._next_trip = self._t + timedelta(seconds=self.rng.expovariate(rate / 3600))
        if self._next_trip > until:
            return False
        self._trip = self._new_trip(self._next_trip)
        self._next_trip = None
        self.run_count += 1
        if self.rng.random() < 2e-5:  # rare transient door fault that the controller clears itself
            self._trip = None
            self._set_fault(self.rng.choice((2, 3)))
            self._auto_clear = self._t + timedelta(minutes=self.rng.uniform(2, 10))
            return False
        return True

    def _new_trip(self, depart: datetime) -> _Trip:
        dest = self._choose_destination(depart)
        return _Trip(depart, self.floor, dest, loaded=self.rng.random() < 0.75, dwell_s=self.rng.uniform(3, 7))

    def _choose_destination(self, ts: datetime) -> int:
        hour = hour_of_day(ts.astimezone(self.tz))
        floors = [f for f in range(self.lowest, self.highest + 1) if f not in (0, self.floor)]
        out_peak = 6.5 <= hour <= 9.5 if self.traffic == "residential" else 17 <= hour <= 19
        in_peak = 17 <= hour <= 20.5 if self.traffic == "residential" else 8 <= hour <= 9.5
        if self.floor != self.lobby and (out_peak or in_peak) and self.rng.random() < 0.8:
            return self.lobby
        if self.floor != self.lobby and self.rng.random() < 0.3:
            return self.lobby
        upper = [f for f in floors if f > self.lobby]
        if in_peak and self.floor == self.lobby and upper:
            return self.rng.choice(upper)
        return self.rng.choice(floors)

    def _finish(self, trip: _Trip) -> None:
        self.floor = trip.dest
        self.door_cycles += 1
        self.levelling_mm = self.rng.gauss(0, 1.5 + 9 * self._wear)
        if self.rng.random() < 0.01 + 0.3 * self._wear:
            self.door_cycles += 1
            self.emit("door_reopen", floor=trip.dest)
        self._t = trip.end
        self._trip = None
        if trip.park:
            self.door_idle = "open"

    # --- sampling ------------------------------------------------------------------------------

    def _sample(self, ts: datetime) -> dict[str, MetricValue]:
        self._advance(ts)
        state = self._motion(ts)
        running = bool(state["running"])
        loaded = bool(state["passenger"])
        metrics: dict[str, MetricValue] = {
            "service_mode": self.service_mode, **state,
            "run_count": self.run_count, "door_cycles": self.door_cycles,
            "motor_current_a": round(self._current(running, loaded, state["direction"] == "up"), 2),
            "vibration_mg": round(self._vibration(running), 1),
            "levelling_mm": round(self.levelling_mm, 1),
            "fault_code": self.fault_code, "power_ok": self.power_ok, "alarm_button": self.alarm_button,
        }
        return metrics

    def _motion(self, ts: datetime) -> dict[str, MetricValue]:
        trip = self._trip
        if trip is None or ts < trip.depart:
            return {"running": False, "direction": "stopped", "floor": self.floor, "door": self.door_idle,
                    "door_zone": not self.trapped_between_floors, "passenger": self.passenger, "speed_ms": 0.0}
        if ts < trip.arrive:
            elapsed = (ts - trip.depart).total_seconds()
            up = trip.dest > trip.origin
            passed = int(elapsed / trip.travel_s * abs(trip.dest - trip.origin))
            floor = trip.origin + (passed if up else -passed)
            speed = self.rated_speed * min(1.0, elapsed / 1.5, (trip.travel_s - elapsed) / 1.5)
            return {"running": True, "direction": "up" if up else "down", "floor": floor if floor else trip.origin,
                    "door": "closed", "door_zone": False, "passenger": trip.loaded, "speed_ms": round(speed, 2)}
        since = (ts - trip.arrive).total_seconds()
        door = "opening" if since < DOOR_OPENING_S else "open" if since < DOOR_OPENING_S + trip.dwell_s else "closing"
        if trip.park and since >= DOOR_OPENING_S:
            door = "open"  # a recalled car parks with its doors open
        return {"running": False, "direction": "stopped", "floor": trip.dest, "door": door, "door_zone": True,
                "passenger": trip.loaded, "speed_ms": 0.0}

    def _current(self, running: bool, loaded: bool, up: bool) -> float:
        if not self.power_ok:
            return 0.0
        if not running:
            return max(0.0, 0.8 + self.rng.gauss(0, 0.05))
        load = 6.0 if loaded == up else -2.0  # a counterweighted car pulls hardest going up full
        return max(0.0, 16 + load + 10 * self._wear + self.rng.gauss(0, 0.6))

    def _vibration(self, running: bool) -> float:
        base = 12 + 40 * self._wear**1.5 if running else 1.0 + 2 * self._wear
        return max(0.0, base + self.rng.gauss(0, 0.15 * base))

    # --- wear and faults ---------------------------------------------------------------------

    def _update_wear(self, ts: datetime) -> None:
        if self._degrade is None:
            return
        start, over, fail_with = self._degrade
        self._wear = min(1.0, max(0.0, (ts - start) / over))
        if self._wear >= 1.0:
            self._degrade = None
            self._stop_at_floor()
            self._set_fault(fail_with)
            self.service_mode = "out_of_service"
            self.emit("out_of_service")

    def _set_fault(self, code: int) -> None:
        self.fault_code = code
        self.dirty = True

    def _stop_at_floor(self) -> None:
        """Abandon the trip in progress; the car ends at its destination with doors closed."""
        if self._trip is not None:
            self.floor = self._trip.dest
            self._trip = None
        self._next_trip = None

    # --- scenario actions ----------------------------------------------------------------------

    def parse_action(self, name: str, raw: Any) -> Params:
        params = super().parse_action(name, raw)
        floor = getattr(params, "floor", None)
        if floor is not None and not self.lowest <= floor <= self.highest:
            raise ActionError("floor", f"{self.device.device_id} serves floors {self.lowest}..{self.highest}")
        return params

    def act_entrapment(self, params: EntrapmentParams, ts: datetime) -> None:
        self._advance(ts)
        self._stop_at_floor()
        self.trapped_between_floors = params.between_floors
        self.passenger, self.door_idle = True, "closed"
        self._set_fault(ENTRAPMENT)

    def act_alarm_button(self, params: PressParams, _ts: datetime) -> None:
        self.alarm_button = params.pressed

    def act_release(self, _params: NoParams, ts: datetime) -> None:
        """The maintenance unit has freed the passengers; the lift stays out of service until checked."""
        self._advance(ts)
        self.passenger = self.alarm_button = self.trapped_between_floors = False
        self.door_idle = "open"
        self._set_fault(0)
        self.service_mode = "out_of_service"
        self.emit("out_of_service")

    def act_return_to_service(self, _params: NoParams, ts: datetime) -> None:
        self._advance(ts)
        self.service_mode, self.door_idle = "normal", "closed"
        self.emit("back_to_auto")

    def act_fault(self, params: FaultParams, ts: datetime) -> None:
        self._advance(ts)
        self._stop_at_floor()
        self._set_fault(params.code)

    def act_clear_fault(self, _params: NoParams, ts: datetime) -> None:
        self._advance(ts)
        self._set_fault(0)
        self.emit("back_to_auto")

    def act_recall(self, params: RecallParams, ts: datetime) -> None:
        """Fire recall (迫降首层) or parking (e.g. away from a flooding pit), as the command does."""
        self.cmd_recall(params, ts)

    def act_power_loss(self, params: PowerLossParams, ts: datetime) -> None:
        self._advance(ts)
        moving = self._trip is not None and self._trip.depart <= ts < self._trip.arrive
        self._stop_at_floor()
        self.power_ok = False
        self.emit("main_power_lost")
        if params.entrap and moving:
            self.act_entrapment(EntrapmentParams(between_floors=not params.rescue_device), ts)
        elif params.rescue_device:
            self.service_mode, self.door_idle = "emergency_power", "open"
            self.emit("emergency_power")

    def act_power_restore(self, _params: NoParams, ts: datetime) -> None:
        self._advance(ts)
        self.power_ok = True
        if self.service_mode == "emergency_power":
            self.service_mode, self.door_idle = "normal", "closed"
        self.emit("back_to_auto")

    def act_earthquake(self, _params: NoParams, ts: datetime) -> None:
        self._advance(ts)
        self._stop_at_floor()
        self.service_mode, self.door_idle = "out_of_service", "open"
        self.emit("earthquake")

    def act_degrade(self, params: DegradeParams, ts: datetime) -> None:
        self._advance(ts)
        self._degrade = (ts, params.over, params.fail_with)

    def act_repair(self, _params: NoParams, ts: datetime) -> None:
        self._advance(ts)
        self._degrade, self._wear = None, 0.0
        self._set_fault(0)
        self.service_mode, self.door_idle = "normal", "closed"
        self.emit("back_to_auto")

    def act_inspection(self, params: InspectionParams, ts: datetime) -> None:
        self._advance(ts)
        self._stop_at_floor()
        if params.active:
            self.service_mode = "inspection"
            self.emit("inspection")
        else:  # a lift that failed stays out of service after the visit
            self.service_mode = "out_of_service" if self.fault_code else "normal"
            self.emit("out_of_service" if self.fault_code else "back_to_auto")

    # --- commands ------------------------------------------------------------------------------

    def cmd_recall(self, params: RecallParams, ts: datetime) -> None:
        self._advance(ts)
        if self.fault_code == ENTRAPMENT:
            raise CommandRejected("passengers are trapped (fault 11): only the maintenance unit may move the car")
        if not self.power_ok:
            raise CommandRejected("no main power: the car cannot travel")
        target = self.lobby if params.floor is None else params.floor
        if not self.lowest <= target <= self.highest:
            raise CommandRejected(f"floor {target} is not served (floors {self.lowest}..{self.highest})")
        origin = self._trip.dest if self._trip is not None else self.floor
        self._trip, self._next_trip = None, None
        self.floor = origin
        self.service_mode = params.mode
        self.passenger = False
        if params.mode == "fire":
            self.emit("fire_recall")
        if origin == target:
            self.door_idle = "open"
        else:
            self._trip = _Trip(ts, origin, target, loaded=False, dwell_s=0.0, park=True)

    def cmd_out_of_service(self, _params: NoParams, ts: datetime) -> None:
        self._advance(ts)
        if self.fault_code == ENTRAPMENT:
            raise CommandRejected("passengers are trapped (fault 11): release them first")
        self.service_mode = "out_of_service"
        self.emit("out_of_service")

    def cmd_return_to_service(self, _params: NoParams, ts: datetime) -> None:
        self._advance(ts)
        if self.fault_code:
            raise CommandRejected(f"fault {self.fault_code} ({ELEVATOR_FAULT_CODES[self.fault_code][1]}) is active: "
                                  "the maintenance unit must clear it on site")
        if not self.power_ok:
            raise CommandRejected("no main power")
        self.act_return_to_service(_params, ts)
