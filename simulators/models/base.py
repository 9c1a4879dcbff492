"""The device-model interface: seeded state, `sample(ts)`, scenario actions and commands.

A model is pure in the sense that matters for tests: given its seed and the same sequence of
calls (samples, actions, commands at the same simulated times) it produces the same values. It
does no I/O and never reads a clock; the engine passes the time in.

Every value leaves `sample` fitted to `core.schema` (clamped to its range, rounded), so the
ingest side never dead-letters simulated data. Actions and commands are declared per family as
small pydantic parameter models; the scenario loader validates steps against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from core.domain import DeviceRef, Event, Family, MetricValue
from core.schema import DEFAULT_REPORT_INTERVAL_S, FAMILY_METRICS, is_known_event, metric_spec
from simulators.models.curves import Weather, device_rng
from simulators.models.effects import Drift, Effect, Flap, Hold, Ramp, Stuck
from simulators.timebase import parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Scalar = bool | int | float | str


class Params(BaseModel):
    """Parameters of an action or a command; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NoParams(Params):
    pass


Table = dict[str, type[Params]]  # action or command name -> its parameters


class ActionError(ValueError):
    """A scenario step that does not fit its device; `field` names the offending step field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class CommandRejected(Exception):
    """A command the device refuses; `reason` goes into the `rejected` acknowledgement."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Sample:
    metrics: dict[str, MetricValue]
    events: tuple[Event, ...] = ()


# --- generic actions, valid for every family ------------------------------------------------


class SetParams(Params):
    metrics: dict[str, Scalar] = Field(min_length=1)
    duration: Duration | None = Field(None, alias="for")


class RampParams(Params):
    metric: str
    to: float
    over: Duration
    start_value: float | None = Field(None, alias="from")
    duration: Duration | None = Field(None, alias="for")


class StuckParams(Params):
    metric: str
    duration: Duration | None = Field(None, alias="for")


class DriftParams(Params):
    metric: str
    per_hour: float
    duration: Duration | None = Field(None, alias="for")


class FlapParams(Params):
    metric: str
    values: list[Scalar] = Field(min_length=2)
    period: Duration
    duration: Duration | None = Field(None, alias="for")


class ClearParams(Params):
    metrics: list[str] | None = None


class EventParams(Params):
    code: str
    attrs: dict[str, Scalar] = Field(default_factory=dict)


class OfflineParams(Params):
    duration: Duration = Field(alias="for")


GENERIC_ACTIONS: dict[str, type[Params]] = {
    "set": SetParams, "ramp": RampParams, "stuck": StuckParams, "drift": DriftParams,
    "flap": FlapParams, "clear": ClearParams, "event": EventParams, "offline": OfflineParams,
}
_NUMERIC_ONLY = ("ramp", "drift")


class DeviceModel:
    """Base class of every simulated device. Subclasses implement `_sample(ts)`.

    Family actions are methods `act_<name>(params, ts)` declared in `ACTIONS`; commands are
    methods `cmd_<name>(params, ts)` declared in `COMMANDS`.
    """

    family: ClassVar[Family]
    ACTIONS: ClassVar[dict[str, type[Params]]] = {}
    COMMANDS: ClassVar[dict[str, type[Params]]] = {}

    def __init__(self, device: DeviceRef, *, seed: int, weather: Weather, interval_s: float | None = None) -> None:
        if device.family is not self.family:
            raise ValueError(f"{device.key}: a {type(self).__name__} simulates {self.family.value} devices")
        self.device = device
        self.rng = device_rng(seed, device.device_id)
        self.weather = weather
        self.tz = weather.tz
        self.interval_s = interval_s or DEFAULT_REPORT_INTERVAL_S[self.family]
        self.dirty = False  # something worth reporting at once (an event, a command's effect)
        self.silent_until: datetime | None = None
        self._effects: dict[str, Effect] = {}
        self._pending: list[Event] = []

    # --- what subclasses provide -------------------------------------------------------------

    def _sample(self, ts: datetime) -> dict[str, MetricValue]:
        """Advance the state to `ts` and return the device's own values."""
        raise NotImplementedError

    def next_change(self) -> datetime | None:
        """When the device will next change state on its own (a fault clearing, a failure), if known.

        The engine reports at that time too, as a real device reports a change at once.
        """
        return None

    def metric_names(self) -> tuple[str, ...]:
        """The metrics this device reports (a meter reports only those of its kind)."""
        return tuple(spec.name for spec in FAMILY_METRICS[self.family])

    # --- sampling ------------------------------------------------------------------------------

    def sample(self, ts: datetime) -> Sample:
        metrics = self._sample(ts)
        for name, effect in list(self._effects.items()):
            if effect.expired(ts):
                del self._effects[name]
                continue
            value = effect.apply(ts, metrics.get(name))
            if value is not None:
                metrics[name] = value
        events = tuple(self._pending)
        self._pending.clear()
        self.dirty = False
        return Sample(self._fit(metrics), events)

    def emit(self, code: str, **attrs: Scalar) -> None:
        """Queue an event for the next reading, and ask for that reading at once."""
        self._pending.append(Event(code, attrs))
        self.dirty = True

    def silent(self, ts: datetime) -> bool:
        """True while the device itself does not report (dead battery, lost radio link)."""
        return self.silent_until is not None and ts < self.silent_until

    def _fit(self, metrics: Mapping[str, MetricValue]) -> dict[str, MetricValue]:
        fitted: dict[str, MetricValue] = {}
        for name, value in metrics.items():
            spec = metric_spec(self.family, name)
            if spec is None:
                raise KeyError(f"{self.device.key}: model produced unknown metric {name!r}")
            if spec.type == "integer":
                fitted[name] = round(_clamp(float(cast(float, value)), spec.minimum, spec.maximum))
            elif spec.type == "number":
                fitted[name] = round(_clamp(float(cast(float, value)), spec.minimum, spec.maximum), 3)
            else:
                fitted[name] = value
        return fitted

    # --- scenario actions ---------------------------------------------------------------------

    def actions(self) -> dict[str, type[Params]]:
        """The actions a scenario may apply to this device."""
        return {**GENERIC_ACTIONS, **self.ACTIONS}

    def parse_action(self, name: str, raw: Mapping[str, Any]) -> Params:
        """Validate a step's parameters for this device; raises `ActionError` or ValidationError."""
        actions = self.actions()
        if name not in actions:
            raise ActionError("do", f"{self.device.device_id} ({self._kind_label()}) has no action {name!r}; "
                                    f"it has {', '.join(sorted(actions))}")
        params = actions[name].model_validate(dict(raw))
        self._check_generic(name, params)
        return params

    def act(self, name: str, params: Params, ts: datetime) -> None:
        """Apply a validated action at simulated time `ts`."""
        if name in GENERIC_ACTIONS:
            self._act_generic(params, ts)
        else:
            getattr(self, f"act_{name}")(params, ts)
        self.dirty = True

    def _act_generic(self, params: Params, ts: datetime) -> None:
        until = _until(ts, getattr(params, "duration", None))
        match params:
            case SetParams():
                for name, value in params.metrics.items():
                    self._effects[name] = Hold(value, until)
            case RampParams():
                self._effects[params.metric] = Ramp(ts, params.over, params.to, params.start_value, until)
            case StuckParams():
                self._effects[params.metric] = Stuck(until)
            case DriftParams():
                self._effects[params.metric] = Drift(ts, params.per_hour, until)
            case FlapParams():
                self._effects[params.metric] = Flap(ts, params.period, tuple(params.values), until)
            case ClearParams():
                for name in params.metrics or list(self._effects):
                    self._effects.pop(name, None)
            case EventParams():
                self.emit(params.code, **params.attrs)
            case OfflineParams():
                self.silent_until = ts + params.duration

    def _check_generic(self, name: str, params: Params) -> None:
        if isinstance(params, EventParams) and not is_known_event(self.family, params.code):
            raise ActionError("code", f"{self.family.value} has no event {params.code!r}")
        metrics = _metrics_named(params)
        for metric in metrics:
            if metric not in self.metric_names():
                raise ActionError("metric", f"{self.device.device_id} ({self._kind_label()}) has no metric {metric!r}; "
                                            f"it has {', '.join(self.metric_names())}")
            spec = metric_spec(self.family, metric)
            if name in _NUMERIC_ONLY and spec is not None and spec.type not in ("number", "integer"):
                raise ActionError("metric", f"cannot {name} {metric!r}: it is not a number")
        for metric, value in _values_given(params):
            spec = metric_spec(self.family, metric)
            if spec is not None:
                try:
                    spec.check(value)
                except ValueError as exc:
                    raise ActionError("metrics" if isinstance(params, SetParams) else "values", str(exc)) from None

    def _kind_label(self) -> str:
        return self.family.value

    # --- commands from fmon -------------------------------------------------------------------

    def command(self, name: str, raw: Mapping[str, Any], ts: datetime) -> None:
        """Carry out a command or raise `CommandRejected` with the reason."""
        if name not in self.COMMANDS:
            supported = ", ".join(sorted(self.COMMANDS)) or "none"
            raise CommandRejected(f"{self.family.value} device {self.device.device_id} does not support "
                                  f"command {name!r} (supported: {supported})")
        try:
            params = self.COMMANDS[name].model_validate(dict(raw))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors())
            raise CommandRejected(f"bad parameters for {name}: {problems}") from None
        getattr(self, f"cmd_{name}")(params, ts)
        self.dirty = True


def _clamp(value: float, low: float | None, high: float | None) -> float:
    if low is not None and value < low:
        return low
    if high is not None and value > high:
        return high
    return value


def _until(ts: datetime, duration: timedelta | None) -> datetime | None:
    return None if duration is None else ts + duration


def _metrics_named(params: Params) -> list[str]:
    if isinstance(params, SetParams):
        return list(params.metrics)
    if isinstance(params, ClearParams):
        return list(params.metrics or [])
    metric = getattr(params, "metric", None)
    return [metric] if isinstance(metric, str) else []


def _values_given(params: Params) -> list[tuple[str, Scalar]]:
    if isinstance(params, SetParams):
        return list(params.metrics.items())
    if isinstance(params, FlapParams):
        return [(params.metric, value) for value in params.values]
    return []
