"""Rules as code: static checks of rule files and rule unit tests written in YAML.

`check_rules(paths)` validates rule files (schema, duplicate ids) and lints what the schema
cannot see: metrics and event codes the device family does not have (ingest rejects those, so
such a rule never fires), conditions that do not fit the metric's type, and message templates
that do not render as written. Every problem is `file:line: field: message`.

`run_tests(paths)` runs rule unit tests in the manner of `promtool test rules`: each test
names devices, an input series at offsets from a start time, and the condition changes
expected; the runner feeds a fresh `RuleEngine` in time order, ticking a fake clock (nothing
sleeps), and compares what came out with what was expected. The format is in docs/rules.md.

Not for: evaluating rules on live data (`rules.engine`) or on stored history (`rules.backtest`).
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from core.clock import FakeClock
from core.domain import DeviceRef, Event, Family, Grade, Reading, validate_id
from core.schema import is_known_event, metric_spec
from core.yamlfile import YamlDocument, YamlFileError, read_yaml, validate
from ingest.presence import Cause, PresenceEvent
from rules.engine import RuleEngine
from rules.loader import LIBRARY, load_rules, read_rules, rule_files
from rules.model import (
    Anomaly,
    Band,
    ChangeKind,
    ConditionChange,
    Count,
    EventMatch,
    Rate,
    Rule,
    Scalar,
    Source,
    State,
    Threshold,
    Zone,
)

# --- static checks of rule files ---------------------------------------------------------------------


@dataclass(frozen=True)
class CheckReport:
    """What `check_rules` found: the rules, the files they came from, and every problem."""

    files: tuple[Path, ...]
    rules: tuple[Rule, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> list[str]:
        """Rules per family and kind, as a small table."""
        counts = Counter((rule.family.value, rule.condition.kind) for rule in self.rules)
        kinds = sorted({kind for _family, kind in counts})
        families = sorted({family for family, _kind in counts})
        width = max([len("family"), *map(len, families)])
        lines = [f"{'family':<{width}}  " + "  ".join(kinds) + "  total"]
        for family in families:
            cells = "  ".join(f"{counts[(family, k)] or '':>{len(k)}}" for k in kinds)
            lines.append(f"{family:<{width}}  {cells}  {sum(counts[(family, k)] for k in kinds):>5}")
        return lines


def check_rules(paths: Iterable[Path]) -> CheckReport:
    """Validate and lint every rule file among `paths` (directories searched recursively)."""
    try:
        files = rule_files(paths)
    except YamlFileError as exc:
        return CheckReport((), (), exc.problems)
    rules, problems = read_rules(files, lint_rule)
    return CheckReport(tuple(files), tuple(rules), tuple(problems))


Lint = tuple[tuple[str, ...], str]  # (field path inside the rule, message)


def lint_rule(rule: Rule) -> list[Lint]:
    """What would make a valid rule never fire or render a broken message."""
    return [*_lint_condition(rule), *_lint_messages(rule)]


_NUMERIC_KINDS = (Threshold, Band, Rate, Anomaly)


def _lint_condition(rule: Rule) -> list[Lint]:
    c, family = rule.condition, rule.family
    found: list[Lint] = []
    at: tuple[str, ...] = ("condition", "metric") if hasattr(c, "metric") else ("condition",)
    for metric in c.metrics:
        spec = metric_spec(family, metric)
        if spec is None:
            found.append((at, f"{family.value} devices have no metric {metric!r} (ingest rejects it)"))
        elif isinstance(c, _NUMERIC_KINDS) and spec.type in ("boolean", "enum"):
            found.append((at, f"{c.kind} needs a number, but {metric} is {spec.type}: use kind state"))
        elif isinstance(c, State):
            found.extend(_lint_state(c, spec.type, spec.choices))
    if isinstance(c, EventMatch | Count):
        found.extend((("condition", "codes"), f"{family.value} devices report no event {code!r}")
                     for code in c.codes if not is_known_event(family, code))
    return found


def _lint_state(c: State, kind: str, choices: tuple[str, ...]) -> list[Lint]:
    if c.bit is not None:
        integer = kind == "integer"
        return [] if integer else [(("condition", "bit"), f"bit needs an integer metric; {c.metric} is {kind}")]
    if kind == "enum":
        return [(("condition", "values"), f"{c.metric} is never {v!r} (one of {', '.join(choices)})")
                for v in c.values if v not in choices]
    if kind == "boolean" and not all(isinstance(v, bool) for v in c.values):
        return [(("condition", "values"), f"{c.metric} is true or false")]
    return []


def _lint_messages(rule: Rule) -> list[Lint]:
    sample = _sample_values(rule)
    found: list[Lint] = []
    for name in ("message_zh", "message_en"):
        template: str = getattr(rule, name)
        try:
            template.format(**sample)
        except KeyError as exc:
            found.append(((name,), f"unknown placeholder {{{exc.args[0]}}}; known: {', '.join(sorted(sample))}"))
        except (IndexError, ValueError, TypeError) as exc:
            found.append(((name,), f"does not render with a {rule.condition.kind} value "
                                   f"({sample['value']!r}): {exc}"))
    return found


def _sample_values(rule: Rule) -> dict[str, Any]:
    """The placeholders `ConditionChange.message` offers, with a value of the kind's type."""
    c = rule.condition
    value: Any = None
    if isinstance(c, _NUMERIC_KINDS):
        value = 1.5
    elif isinstance(c, Count | Zone):
        value = 2
    elif isinstance(c, EventMatch):
        value = c.codes[0]
    elif isinstance(c, State):
        value = c.values[0] if c.values else 1
    limits = {name: getattr(c, name) for name in ("limit", "low", "high", "at_least") if hasattr(c, name)}
    return {"device": "dev-1", "site": "site-1", "zone": "zone-1", "value": value, **limits}


# --- the test file format ----------------------------------------------------------------------------

_OFFSET = re.compile(r"(\d+(?:\.\d+)?)(ms|min|d|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_offset(value: object) -> object:
    """`90s`, `2h`, `1h30m`, `500ms` or a number of seconds, as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    text = value.strip() if isinstance(value, str) else ""
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return timedelta(seconds=float(text))
    if not text or "".join(m[0] for m in _OFFSET.finditer(text)) != text:
        raise ValueError(f"invalid offset {value!r}: use e.g. 0s, 90s, 15m, 2h, 1h30m")
    return timedelta(seconds=sum(float(n) * _UNITS[unit] for n, unit in _OFFSET.findall(text)))


Offset = Annotated[timedelta, BeforeValidator(parse_offset)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeviceDecl(_Strict):
    """A device (or a gateway, `family: gateway`) the test feeds; `id` defaults to its name;
    `zone` and `kind` (e.g. a meter's water/electric) as the device registry would give them."""

    site: Name = "s1"
    family: Family | Literal["gateway"]
    id: Name | None = None
    zone: str | None = None
    kind: str | None = None


class EventDecl(_Strict):
    code: str
    attrs: dict[str, Scalar] = Field(default_factory=dict)


class InputDecl(_Strict):
    """One input: a reading (metrics/events), a presence change (offline), or a series of one
    metric's values every `every` (promtool notation: `1100x5 900 _ 950+10x3`)."""

    at: Offset
    device: str
    metrics: dict[str, Scalar] = Field(default_factory=dict)
    events: tuple[str | EventDecl, ...] = ()
    historical: bool = False
    offline: bool | None = None
    metric: str | None = None
    every: Offset | None = None
    values: str | tuple[Scalar | None, ...] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> InputDecl:
        reading, series = bool(self.metrics or self.events), self.values is not None
        if sum((reading, series, self.offline is not None)) != 1:
            raise ValueError("give metrics and/or events, or offline: true/false, or metric + every + values")
        if series and (self.metric is None or self.every is None or self.every <= timedelta(0)):
            raise ValueError("a series needs metric, every (> 0) and values")
        if isinstance(self.values, str):
            expand_series(self.values)  # fail here, with the line
        return self

    def series(self) -> list[tuple[timedelta, Scalar]]:
        """(offset, value) of each sample of a series input; `_` samples are left out."""
        assert self.every is not None and self.values is not None
        values = expand_series(self.values) if isinstance(self.values, str) else list(self.values)
        return [(self.at + k * self.every, v) for k, v in enumerate(values) if v is not None]


class ExpectDecl(_Strict):
    """A condition change expected at an offset: of a test device (plus `group` for per-group
    count rules) or of an explicit `source` key (`site/zone/z1`, `site/gateway/gw-1`)."""

    at: Offset
    rule: str
    kind: ChangeKind
    device: str | None = None
    group: str | None = None
    source: str | None = None
    grade: Grade | None = None
    value: Scalar | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ExpectDecl:
        if (self.device is None) == (self.source is None):
            raise ValueError("give either device or source")
        return self


class RuleTest(_Strict):
    name: str | None = None
    start: AwareDatetime
    devices: dict[str, DeviceDecl]
    input: tuple[InputDecl, ...] = ()
    tick_every: Offset | None = timedelta(seconds=1)
    ticks: tuple[Offset, ...] = ()
    until: Offset | None = None
    expect: tuple[ExpectDecl, ...] = ()
    strict: bool = True
    only_rules: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> RuleTest:
        if not self.devices:
            raise ValueError("devices: name at least one")
        if self.tick_every is not None and self.tick_every <= timedelta(0):
            raise ValueError("tick_every must be above 0 (or null: only the explicit ticks)")
        return self


class RuleTestFile(_Strict):
    """Rules under test: `rule_files` (relative to this file), the shipped library
    (`default: true`) and/or rules written inline (`rules`, as in a rule file); and the tests."""

    version: Literal[1] = 1
    rule_files: tuple[str, ...] = ()
    default: bool = False
    rules: tuple[Rule, ...] = ()
    tests: tuple[RuleTest, ...]

    @model_validator(mode="after")
    def _some_rules(self) -> RuleTestFile:
        if not self.tests:
            raise ValueError("tests: write at least one")
        if not (self.rule_files or self.default or self.rules):
            raise ValueError("name rule_files, set default: true (the shipped library), or write rules inline")
        return self


_SAMPLE = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
_TOKEN = re.compile(rf"(?P<a>{_SAMPLE}|_)(?:(?P<op>[-+])(?P<b>{_SAMPLE}))?(?:x(?P<n>\d+))?")


def expand_series(text: str) -> list[Scalar | None]:
    """promtool's expanding notation: `a+bxn` is n+1 values from a in steps of b, `axn` is a
    n+1 times, `_` a missing sample and `_xn` n of them."""
    values: list[Scalar | None] = []
    for token in text.split():
        m = _TOKEN.fullmatch(token)
        if m is None or (m["op"] and not m["n"]) or (m["a"] == "_" and m["op"]):
            raise ValueError(f"invalid series value {token!r}: use e.g. 1100, 1100x5, 0+10x6, _, _x3")
        if m["a"] == "_":
            values.extend([None] * int(m["n"] or 1))
            continue
        a, b = _number(m["a"]), _number(m["b"] or "0") * (-1 if m["op"] == "-" else 1)
        values.extend(a + k * b for k in range(int(m["n"] or 0) + 1))
    return values


def _number(text: str) -> int | float:
    return float(text) if any(ch in text for ch in ".eE") else int(text)


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """A condition change as the diff shows it; `at_ms` is the offset from the test's start."""

    at_ms: int
    kind: str
    rule: str
    source: str
    grade: int | None = None
    value: Scalar | None = None

    def cells(self) -> tuple[str, ...]:
        grade = "" if self.grade is None else f"grade {self.grade}"
        value = "" if self.value is None else f"value {self.value!r}"
        return (format_offset(self.at_ms), self.kind, self.rule, self.source, grade, value)


@dataclass(frozen=True)
class CaseResult:
    """One test: the merged timeline, each row marked ' ' (as expected), '-' (expected, not
    produced) or '+' (produced, not expected); `problems` when the test could not run."""

    name: str
    where: str
    rows: tuple[tuple[str, Row], ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems and all(mark == " " for mark, _row in self.rows)

    def report(self) -> list[str]:
        head = f"{self.where}: {self.name}: {'ok' if self.passed else 'FAILED'}"
        if self.passed:
            return [head]
        if self.problems:
            return [head, *(f"  {p}" for p in self.problems)]
        return [head, *_diff_lines(self.rows), "  (- expected but not produced, + produced but not expected)"]


@dataclass(frozen=True)
class FileResult:
    path: Path
    cases: tuple[CaseResult, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems and all(case.passed for case in self.cases)

    def report(self) -> list[str]:
        return [*self.problems, *(line for case in self.cases for line in case.report())]


def _diff_lines(rows: Sequence[tuple[str, Row]]) -> list[str]:
    cells = [row.cells() for _mark, row in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(6)]
    return [f"  {mark} " + "  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip()
            for (mark, _row), cell in zip(rows, cells, strict=True)]


def format_offset(ms: int) -> str:
    """Milliseconds as an offset the test format reads back: 0s, 90s -> 1m30s, 2h, 1.5s."""
    sign, ms = ("-" if ms < 0 else ""), abs(ms)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}s" if rest % 1000 == 0 else f"{rest / 1000:g}s"
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return sign + (text + seconds if rest or not text else text)


# --- running -----------------------------------------------------------------------------------------

MAX_TICKS = 1_000_000  # per test: about 2 s of ticking


def run_tests(paths: Iterable[Path]) -> list[FileResult]:
    """Run every test file among `paths` (directories searched recursively for .yaml/.yml)."""
    try:
        files = rule_files(paths)
    except YamlFileError as exc:
        return [FileResult(Path("."), problems=exc.problems)]
    return [run_test_file(path) for path in files]


def run_test_file(path: Path) -> FileResult:
    try:
        doc = read_yaml(path)
        spec = validate(doc, RuleTestFile)
        rules = _rules_of(doc, path, spec)
    except YamlFileError as exc:
        return FileResult(path, problems=exc.problems)
    cases = tuple(run_case(doc, index, case, rules) for index, case in enumerate(spec.tests))
    return FileResult(path, cases)


def _rules_of(doc: YamlDocument, test_file: Path, spec: RuleTestFile) -> list[Rule]:
    paths = [test_file.parent / name for name in spec.rule_files]
    loaded = load_rules([LIBRARY, *paths] if spec.default else paths) if paths or spec.default else []
    ids, clashes = {rule.id for rule in loaded}, []
    for i, rule in enumerate(spec.rules):
        if rule.id in ids:
            clashes.append(f"{doc.where(('rules', i, 'id'))}: duplicate rule id {rule.id!r}")
        ids.add(rule.id)
    if clashes:
        raise YamlFileError(clashes)
    return [*loaded, *spec.rules]


def run_case(doc: YamlDocument, index: int, case: RuleTest, rules: Sequence[Rule]) -> CaseResult:
    """Run one test of a loaded file (`doc` locates its problems) against `rules`."""
    name = case.name or f"tests[{index}]"
    where = f"{doc.source}:{doc.lines.get(('tests', index), 1)}"
    world = _World(doc, index, case, {rule.id for rule in rules})
    if world.problems:
        return CaseResult(name, where, problems=tuple(world.problems))
    engine = RuleEngine(rules, world.zone_of, world.kind_of)
    try:
        got = [_row(change, world.start) for change in _drive(engine, world)]
    except ValueError as exc:  # an input the domain refuses, e.g. a metric that is not finite
        return CaseResult(name, where, problems=(f"{where}: input: {exc}",))
    wanted = [world.expected_row(e) for e in case.expect]
    if case.only_rules:
        got = [row for row in got if any(fnmatch(row.rule, pattern) for pattern in case.only_rules)]
    return CaseResult(name, where, _compare(wanted, got, case.strict))


class _World:
    """A test case resolved against its file: devices, inputs as engine calls, tick times;
    problems (unknown devices or rules, too many ticks) with their lines."""

    def __init__(self, doc: YamlDocument, index: int, case: RuleTest, rule_ids: set[str]) -> None:
        self.doc, self.path, self.case = doc, ("tests", index), case
        self.start = case.start.astimezone(UTC)
        self.problems: list[str] = []
        self.devices = {name: self._device(name, d) for name, d in case.devices.items()}
        refs = [(ref, d) for name, d in case.devices.items() if isinstance(ref := self.devices[name], DeviceRef)]
        self.zones = {ref: d.zone for ref, d in refs if d.zone is not None}
        self.kinds = {ref: d.kind for ref, d in refs if d.kind is not None}
        for i, e in enumerate(case.expect):
            self._check_expect(i, e, rule_ids)
        for i, item in enumerate(case.input):
            self._check_input(i, item)
        self.until = case.until or self._latest()
        if case.tick_every is not None and self.until / case.tick_every > MAX_TICKS:
            self._problem(("tick_every",), f"{self.until / case.tick_every:.0f} ticks until "
                          f"{format_offset(_ms(self.until))}: use a coarser tick_every (at most {MAX_TICKS})")

    def _latest(self) -> timedelta:
        """The latest offset the test names: inputs (the last sample of a series), ticks, expectations."""
        inputs = [item.series()[-1][0] if item.values is not None and item.series() else item.at
                  for item in self.case.input]
        return max([timedelta(0), *inputs, *self.case.ticks, *(e.at for e in self.case.expect)])

    def zone_of(self, device: DeviceRef) -> str | None:
        return self.zones.get(device)

    def kind_of(self, device: DeviceRef) -> str | None:
        return self.kinds.get(device)

    def _device(self, name: str, d: DeviceDecl) -> DeviceRef | Source:
        try:
            if d.family == "gateway":
                return Source(d.site, "gateway", validate_id(d.id or name, "gateway id"))
            return DeviceRef(d.site, d.family, d.id or name)
        except ValueError as exc:
            self._problem(("devices", name), str(exc))
            return Source(d.site, str(d.family), name)

    def _check_expect(self, i: int, e: ExpectDecl, rule_ids: set[str]) -> None:
        if e.rule not in rule_ids:
            self._problem(("expect", i, "rule"), f"no rule {e.rule!r} in the rule files")
        if e.device is not None:
            self._known(("expect", i, "device"), e.device)

    def _known(self, at: tuple[str | int, ...], name: str) -> bool:
        if name in self.devices:
            return True
        self._problem(at, f"no device {name!r} in devices ({', '.join(self.devices)})")
        return False

    def _check_input(self, i: int, item: InputDecl) -> None:
        if not self._known(("input", i, "device"), item.device):
            return
        if isinstance(self.devices[item.device], Source) and item.offline is None:
            self._problem(("input", i), f"{item.device} is a gateway: it only goes offline: true/false")

    def _problem(self, at: tuple[str | int, ...], message: str) -> None:
        self.problems.append(f"{self.doc.where((*self.path, *at))}: {message}")

    def feeds(self) -> list[tuple[timedelta, _Feed]]:
        """Engine calls in time order (inputs at the same offset keep their file order)."""
        out = [(at, feed) for item in self.case.input for at, feed in self._feeds(item)]
        return sorted(out, key=lambda pair: pair[0])

    def _feeds(self, item: InputDecl) -> list[tuple[timedelta, _Feed]]:
        target = self.devices[item.device]
        if item.offline is not None:
            return [(item.at, _Feed(presence=_presence(target, not item.offline, self.start + item.at)))]
        assert isinstance(target, DeviceRef)
        if item.values is not None:
            assert item.metric is not None
            return [(at, _Feed(reading=Reading(target, self.start + at, {item.metric: v}, historical=item.historical)))
                    for at, v in item.series()]
        events = tuple(Event(e) if isinstance(e, str) else Event(e.code, e.attrs) for e in item.events)
        reading = Reading(target, self.start + item.at, item.metrics, events=events, historical=item.historical)
        return [(item.at, _Feed(reading=reading))]

    def ticks(self) -> Iterator[timedelta]:
        """Explicit ticks and every `tick_every` from the start until `until`, in order, once each."""
        every = self.case.tick_every
        periodic = (k * every for k in range(int(self.until / every) + 1)) if every is not None else iter(())
        last = None
        for at in heapq.merge(sorted(self.case.ticks), periodic):
            if at != last:
                yield at
            last = at

    def expected_row(self, e: ExpectDecl) -> Row:
        if e.source is not None:
            source = e.source
        else:
            assert e.device is not None
            target = self.devices[e.device]
            source = (Source.of(target, e.group) if isinstance(target, DeviceRef) else target).key
        return Row(_ms(e.at), e.kind.value, e.rule, source, None if e.grade is None else int(e.grade), e.value)


@dataclass(frozen=True, slots=True)
class _Feed:
    reading: Reading | None = None
    presence: PresenceEvent | None = None

    def apply(self, engine: RuleEngine) -> list[ConditionChange]:
        if self.reading is not None:
            return engine.process([self.reading])
        assert self.presence is not None
        return engine.presence([self.presence])


def _presence(target: DeviceRef | Source, online: bool, at: datetime) -> PresenceEvent:
    if isinstance(target, DeviceRef):
        return PresenceEvent(target.site, online, Cause.STATUS, at, device=target)
    return PresenceEvent(target.site, online, Cause.STATUS, at, gateway_id=target.id)


def _drive(engine: RuleEngine, world: _World) -> list[ConditionChange]:
    """Inputs and ticks in time order on a fake clock; at equal times inputs come first."""
    clock = FakeClock(world.start)
    changes: list[ConditionChange] = []
    feeds, ticks = world.feeds(), world.ticks()
    next_tick = next(ticks, None)
    for at, feed in feeds:
        while next_tick is not None and next_tick < at:
            clock.set(world.start + next_tick)
            changes.extend(engine.tick(clock.now()))
            next_tick = next(ticks, None)
        clock.set(world.start + at)
        changes.extend(feed.apply(engine))
    for at in [*([next_tick] if next_tick is not None else []), *ticks]:
        clock.set(world.start + at)
        changes.extend(engine.tick(clock.now()))
    return changes


def _row(change: ConditionChange, start: datetime) -> Row:
    value = change.value if isinstance(change.value, bool | int | float | str) else None
    return Row(_ms(change.at - start), change.kind.value, change.rule.id, change.source.key, int(change.grade), value)


def _compare(wanted: list[Row], got: list[Row], strict: bool) -> tuple[tuple[str, Row], ...]:
    """Pair each expected row with a produced one; the rest are '-' (missing) or '+' (extra)."""
    unmatched = list(got)
    rows: list[tuple[str, Row]] = []
    for want in wanted:
        hit = next((g for g in unmatched if _matches(want, g)), None)
        if hit is None:
            rows.append(("-", want))
        else:
            unmatched.remove(hit)
            rows.append((" ", hit))
    if strict:
        rows.extend(("+", g) for g in unmatched)
    return tuple(sorted(rows, key=lambda pair: (pair[1].at_ms, pair[0] == "+")))


def _matches(want: Row, got: Row) -> bool:
    same = (want.at_ms, want.kind, want.rule, want.source) == (got.at_ms, got.kind, got.rule, got.source)
    return same and want.grade in (None, got.grade) and (want.value is None or _same_value(want.value, got.value))


def _same_value(want: Scalar, got: Scalar | None) -> bool:
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (want, got))
    if numbers:
        return math.isclose(float(want), float(got), rel_tol=1e-9, abs_tol=1e-9)  # type: ignore[arg-type]
    return want == got


def _ms(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)

