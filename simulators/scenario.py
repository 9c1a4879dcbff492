"""Scenario files: a timeline of faults and events played on a site, and its expected signature.

A scenario is YAML (simulators/scenarios/*.yaml, shipped with the package as data so that an
installed fmon has them; docs/simulators.md explains the format)::

    name: gas-leak-canteen
    title: Gas leak in the canteen kitchen
    title_zh: 食堂燃气泄漏
    emergency: gas_leak
    duration: 20m
    steps:
      - {at: 1m, device: gd-b2-canteen, do: leak, to: 60, over: 10m}
    expect:
      - {check: crosses, device: gd-b2-canteen, metric: lel_pct, above: 25, at: 5m10s, within: 1m}

Loading validates in two stages, and every problem names the file, the line and the field
(`gas.yaml:14: steps[2].metric: gd-b2-canteen (gas) has no metric 'lel'`):
`load_scenario` checks the structure; `bind` checks the steps against a site's devices (ids,
the actions each device has, their parameters, metric names and values, event codes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.domain import ID_PATTERN
from core.schema import is_known_event, metric_spec
from core.yamlfile import YamlFileError, data_path, parse_yaml, register_union_tags
from simulators.models.base import ActionError, Duration, Params, Scalar
from simulators.site import Site
from simulators.timebase import CHINA_TZ

Emergency = Literal[
    "fire", "elevator_entrapment", "gas_leak", "power_outage", "water", "communications", "sensor_fault",
    "tamper", "equipment_failure", "air_quality", "extreme_weather", "earthquake",
]
Id = Annotated[str, Field(pattern=f"^{ID_PATTERN.pattern}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StepSpec(BaseModel):
    """One step; fields other than these are the action's parameters, checked by `bind`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    at: Duration
    device: Id | None = None
    gateway: Id | None = None
    do: str
    note: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> StepSpec:
        if (self.device is None) == (self.gateway is None):
            raise ValueError("a step names exactly one of device or gateway")
        return self

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class GatewayOfflineParams(Params):
    """The gateway's connection drops without DISCONNECT (its Will fires) for `for`."""

    duration: Duration = Field(alias="for")


GATEWAY_ACTIONS: dict[str, type[Params]] = {"offline": GatewayOfflineParams}


class CrossesExpect(_Strict):
    """The metric first reads at or above `above` at `at` (± `within`), and not before."""

    check: Literal["crosses"]
    device: Id
    metric: str
    above: float
    at: Duration
    within: Duration = timedelta(minutes=1)


class HoldsExpect(_Strict):
    """Every live reading of the device between `from` and `until` has metric == `equals`."""

    check: Literal["holds"]
    device: Id
    metric: str
    equals: Scalar
    start: Duration = Field(alias="from")
    until: Duration


class BetweenExpect(_Strict):
    """Every live reading between `from` and `until` has `min` <= metric <= `max`."""

    check: Literal["between"]
    device: Id
    metric: str
    min: float = float("-inf")
    max: float = float("inf")
    start: Duration = Field(alias="from")
    until: Duration


class ConstantExpect(_Strict):
    """The metric does not change between `from` and `until` (a stuck sensor)."""

    check: Literal["constant"]
    device: Id
    metric: str
    start: Duration = Field(alias="from")
    until: Duration


class FlapsExpect(_Strict):
    """The metric crosses `threshold` (either way) at least `min_count` times in the window."""

    check: Literal["flaps"]
    device: Id
    metric: str
    threshold: float
    min_count: int = Field(3, ge=1)
    start: Duration = Field(alias="from")
    until: Duration


class EventExpect(_Strict):
    """The device reports event `code` (with these attrs) at least `min_count` times in the window."""

    check: Literal["event"]
    device: Id
    code: str
    start: Duration = Field(timedelta(0), alias="from")
    until: Duration
    min_count: int = Field(1, ge=1)
    attrs: dict[str, Scalar] = Field(default_factory=dict)


class NoEventExpect(_Strict):
    """The device does not report event `code` in the window."""

    check: Literal["no_event"]
    device: Id
    code: str
    start: Duration = Field(timedelta(0), alias="from")
    until: Duration


class SilentExpect(_Strict):
    """No live reading of the device is published between `from` and `until`."""

    check: Literal["silent"]
    device: Id
    start: Duration = Field(alias="from")
    until: Duration


class ReplayedExpect(_Strict):
    """Readings stamped between `from` and `until` arrive later with `historical: true`."""

    check: Literal["replayed"]
    device: Id
    start: Duration = Field(alias="from")
    until: Duration


class StatusExpect(_Strict):
    """The gateway's retained status becomes `status` at `at` (± `within`)."""

    check: Literal["status"]
    gateway: Id
    status: Literal["online", "offline"]
    at: Duration
    within: Duration = timedelta(seconds=5)


Expectation = Annotated[
    CrossesExpect | HoldsExpect | BetweenExpect | ConstantExpect | FlapsExpect | EventExpect | NoEventExpect
    | SilentExpect | ReplayedExpect | StatusExpect,
    Field(discriminator="check"),
]


DEFAULT_START = datetime(2026, 3, 2, 8, 0, tzinfo=CHINA_TZ)  # a Monday morning


class Scenario(_Strict):
    name: Id
    title: str
    title_zh: str
    emergency: Emergency
    description: str = ""
    start: AwareDatetime = Field(DEFAULT_START, description="where offline checks start (local time matters)")
    duration: Duration
    steps: list[StepSpec] = Field(min_length=1)
    expect: list[Expectation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _within_duration(self) -> Scenario:
        late = [i for i, step in enumerate(self.steps) if step.at > self.duration]
        if late:
            raise ValueError(f"steps {late} start after the scenario's duration")
        return self


class ScenarioError(ValueError):
    """Problems in a scenario file, each as `FILE:LINE: FIELD: PROBLEM`."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class ScenarioFile:
    """A structurally valid scenario and where it came from (for messages with line numbers)."""

    scenario: Scenario
    source: str
    lines: Mapping[tuple[str | int, ...], int]

    def where(self, path: tuple[str | int, ...]) -> str:
        return where(self.source, self.lines, path)


@dataclass(frozen=True, slots=True)
class BoundStep:
    """A step checked against a site: `params` validated by the device's model."""

    at: timedelta
    action: str
    params: Params
    device_id: str | None = None
    gateway_id: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class BoundScenario:
    scenario: Scenario
    steps: tuple[BoundStep, ...]

    @property
    def devices(self) -> set[str]:
        """Devices the scenario touches or checks, and all devices behind the gateways it touches."""
        named = {s.device_id for s in self.steps if s.device_id}
        named |= {e.device for e in self.scenario.expect if not isinstance(e, StatusExpect)}
        return named

    @property
    def gateways(self) -> set[str]:
        return {s.gateway_id for s in self.steps if s.gateway_id}


def where(source: str, lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> str:
    """`FILE:LINE: FIELD` of a path into the document (the line of the nearest known part)."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return f"{source}:{lines[path[:end]]}: {field_label(path)}"
    return f"{source}: {field_label(path)}"


def field_label(path: Sequence[str | int]) -> str:
    """('steps', 2, 'metric') → 'steps[2].metric'."""
    label = ""
    for part in path:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else part)
    return label or "(document)"


# --- loading ---------------------------------------------------------------------------------

# Package data, beside the code: the wheel and the Docker image hold only the import packages.
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


def scenario_path(name_or_path: str) -> Path:
    """A file path as given, or the name of a shipped scenario (simulators/scenarios/NAME.yaml)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return SCENARIO_DIR / f"{name_or_path}.yaml"


def shipped_scenarios() -> list[Path]:
    """The shipped scenario files, by name (none if fmon was installed without its package data)."""
    return sorted(SCENARIO_DIR.glob("*.yaml"))



def load_scenario(path: Path) -> ScenarioFile:
    """Read and structurally validate a scenario file; raises `ScenarioError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str = "<scenario>") -> ScenarioFile:
    try:
        doc = parse_yaml(text, source)
    except YamlFileError as exc:
        raise ScenarioError(list(exc.problems)) from None
    data, lines = doc.data, dict(doc.lines)
    if not isinstance(data, dict):
        raise ScenarioError([f"{source}:1: (document): a scenario is a mapping with name, title, steps, …"])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError([f"{where(source, lines, _data_path(data, err['loc']))}: {_message(err)}"
                             for err in exc.errors()]) from None
    return ScenarioFile(scenario, source, lines)


def _data_path(data: Any, loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """Pydantic's error location as a path into the data (core.yamlfile, with our check tags)."""
    return data_path(data, loc)


_CHECKS = {"crosses", "holds", "between", "constant", "flaps", "event", "no_event", "silent", "replayed", "status"}
register_union_tags(*_CHECKS)


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


# --- binding to a site ---------------------------------------------------------------------------


def bind(file: ScenarioFile, site: Site) -> BoundScenario:
    """Check every step and expectation against `site`; raises `ScenarioError` listing all problems."""
    problems: list[str] = []
    steps = []
    for index, spec in enumerate(file.scenario.steps):
        try:
            steps.append(_bind_step(spec, site))
        except ActionError as exc:
            problems.append(f"{file.where(('steps', index, exc.field))}: {exc}")
        except ValidationError as exc:
            problems += [f"{file.where(('steps', index, *_data_path(spec.params, e['loc'])))}: {_message(e)}"
                         for e in exc.errors()]
    for index, expectation in enumerate(file.scenario.expect):
        problem = _check_expectation(expectation, site, file.scenario.duration)
        if problem is not None:
            problems.append(f"{file.where(('expect', index, problem[0]))}: {problem[1]}")
    if problems:
        raise ScenarioError(problems)
    steps.sort(key=lambda s: s.at)  # stable: steps at the same time keep the file's order
    return BoundScenario(file.scenario, tuple(steps))


def _bind_step(spec: StepSpec, site: Site) -> BoundStep:
    if spec.gateway is not None:
        if spec.gateway not in site.gateways:
            raise ActionError("gateway", f"site {site.site_id} has no gateway {spec.gateway!r}; "
                                         f"it has {', '.join(site.gateways)}")
        if spec.do not in GATEWAY_ACTIONS:
            raise ActionError("do", f"gateways have the actions {', '.join(GATEWAY_ACTIONS)}, not {spec.do!r}")
        params = GATEWAY_ACTIONS[spec.do].model_validate(spec.params)
        return BoundStep(spec.at, spec.do, params, gateway_id=spec.gateway, note=spec.note)
    assert spec.device is not None
    if spec.device not in site.devices:
        raise ActionError("device", f"site {site.site_id} has no device {spec.device!r}")
    params = site.devices[spec.device].model.parse_action(spec.do, spec.params)
    return BoundStep(spec.at, spec.do, params, device_id=spec.device, note=spec.note)


def _check_expectation(expect: Any, site: Site, duration: timedelta) -> tuple[str, str] | None:
    if isinstance(expect, StatusExpect):
        if expect.gateway not in site.gateways:
            return "gateway", f"site {site.site_id} has no gateway {expect.gateway!r}"
        return None
    if expect.device not in site.devices:
        return "device", f"site {site.site_id} has no device {expect.device!r}"
    model = site.devices[expect.device].model
    metric = getattr(expect, "metric", None)
    if metric is not None and metric not in model.metric_names():
        return "metric", f"{expect.device} has no metric {metric!r}"
    if isinstance(expect, HoldsExpect):
        spec = metric_spec(model.family, expect.metric)
        try:
            if spec is not None:
                spec.check(expect.equals)
        except ValueError as exc:
            return "equals", str(exc)
    code = getattr(expect, "code", None)
    if code is not None and not is_known_event(model.family, code):
        return "code", f"{model.family.value} has no event {code!r}"
    end = cast(timedelta, getattr(expect, "until", None) or getattr(expect, "at", timedelta(0)))
    if end > duration:
        return ("until" if hasattr(expect, "until") else "at"), "is after the scenario's duration"
    return None
