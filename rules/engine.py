"""The rule engine: rules indexed by (family, metric) and (family, event code); state per
(rule, source); pure: observations and time in, condition changes out.

The cost per reading depends on the rules that match its family and metrics, not on how many
rules are loaded. Threshold and band rules are evaluated a batch at a time with numpy
(`rules.vector`): only the readings that breach, and the devices whose alarm is active or pending,
go through the per-reading path; a reading inside the limits of an idle rule changes nothing.
Historical (store-and-forward) readings never raise or clear alarms. The state of every
(rule, source) is a JSON-able dict: `take_dirty()` hands changed states to the caller for saving
and `restore()` puts them back after a restart, timers included.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.domain import DeviceRef, Family, MetricValue, Reading
from ingest.presence import PresenceEvent
from rules import conditions as cond
from rules import vector
from rules.model import (
    Anomaly,
    Band,
    ChangeKind,
    Composite,
    ConditionChange,
    Count,
    EventMatch,
    Offline,
    Rate,
    Rule,
    SeqGap,
    Source,
    State,
    Threshold,
    Zone,
)
from rules.timing import Timing, due, step

ZoneOf = Callable[[DeviceRef], str | None]
KindOf = Callable[[DeviceRef], str | None]  # e.g. the meter kind (water, electric) from the registry
StateKey = tuple[str, str]  # (rule id, source key)
WINDOWED = (EventMatch, Count, SeqGap)  # kinds the tick re-evaluates while they hold state


@dataclass
class _Slot:
    source: Source
    timing: Timing = field(default_factory=Timing)
    cond: dict[str, Any] = field(default_factory=dict)


class RuleEngine:
    def __init__(self, rules: Iterable[Rule], zone_of: ZoneOf = lambda _d: None,
                 kind_of: KindOf = lambda _d: None, vectorized: bool = True) -> None:
        """`vectorized=False` evaluates every rule per reading (the reference for tests and bench)."""
        self._zone_of, self._kind_of, self._vectorized = zone_of, kind_of, vectorized
        self._slots: dict[StateKey, _Slot] = {}
        self._values: dict[DeviceRef, dict[str, MetricValue]] = defaultdict(dict)
        # The last `seq` per device, in memory: a gap across a restart of fmon goes uncounted,
        # in exchange no state is written for the (almost always) gapless readings.
        self._last_seq: dict[DeviceRef, int] = {}
        self._zones: dict[tuple[str, str], dict[str, bool]] = defaultdict(dict)  # (rule, zone) -> device -> clause
        self._waiting: set[StateKey] = set()
        self._dirty: set[StateKey] = set()
        self._install(list(rules))

    # --- rules -------------------------------------------------------------------------------------

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules.values())

    def replace_rules(self, rules: Iterable[Rule], now: datetime) -> list[ConditionChange]:
        """Hot reload: unchanged rules keep their state; a changed rule keeps its alarm timing but
        re-learns its condition; active alarms of removed rules are cleared."""
        new = {r.id: r for r in rules if r.enabled}
        changes = []
        for key, slot in list(self._slots.items()):
            old, replacement = self._rules[key[0]], new.get(key[0])
            if replacement is None:
                if slot.timing.active:
                    changes.append(ConditionChange(ChangeKind.CLEAR, old, slot.source, now, None, old.grade))
                del self._slots[key]
                self._waiting.discard(key)
                self._dirty.add(key)
            elif replacement != old:
                slot.cond.clear()
        self._install(list(new.values()))
        return changes

    def _install(self, rules: list[Rule]) -> None:
        self._rules: dict[str, Rule] = {}
        self._by_metric: dict[tuple[Family, str], list[Rule]] = defaultdict(list)
        self._by_column: dict[tuple[Family, str], list[Rule]] = defaultdict(list)  # batch-evaluated
        self._by_event: dict[tuple[Family, str], list[Rule]] = defaultdict(list)
        self._offline: dict[tuple[str, bool], list[Rule]] = defaultdict(list)
        self._by_seq: dict[Family, list[Rule]] = defaultdict(list)
        for rule in rules:
            if not rule.enabled:
                continue
            if rule.id in self._rules:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            self._rules[rule.id] = rule
            self._index(rule)
        self._live = vector.live_sources(self._slots, self._rules)

    def _index(self, rule: Rule) -> None:
        c = rule.condition
        if isinstance(c, EventMatch | Count):
            for code in c.codes:
                self._by_event[(rule.family, code)].append(rule)
        elif isinstance(c, Offline):
            self._offline[(rule.family.value, c.gateway)].append(rule)
        elif isinstance(c, SeqGap):
            self._by_seq[rule.family].append(rule)
        elif self._vectorized and vector.batchable(rule):
            self._by_column[(rule.family, c.metric)].append(rule)  # type: ignore[union-attr]
        else:
            for metric in c.metrics:
                self._by_metric[(rule.family, metric)].append(rule)

    # --- observations ------------------------------------------------------------------------------

    def process(self, readings: Sequence[Reading]) -> list[ConditionChange]:
        """Evaluate a batch of readings in order; return the condition changes."""
        changes: list[ConditionChange] = []
        live = [reading for reading in readings if not reading.historical]
        candidates = vector.candidates(live, self._by_column, self._live) if self._by_column else {}
        index = -1
        for reading in readings:
            if reading.historical:
                self._backfill_seq(reading)
                continue
            index += 1
            values = self._values[reading.device]
            values.update(reading.metrics)
            for rule in self._metric_rules(reading) + candidates.get(index, []):
                if self._applies(rule, reading.device):
                    changes.extend(self._evaluate(rule, reading, values))
            for event in reading.events:
                for rule in self._by_event.get((reading.device.family, event.code), ()):
                    if self._applies(rule, reading.device):
                        changes.extend(self._on_event(rule, reading, event))
            if reading.seq is not None:
                changes.extend(self._on_seq(reading, reading.seq))
        return changes

    def _backfill_seq(self, reading: Reading) -> None:
        """A stored-and-forwarded reading is never evaluated, but it fills its part of the `seq`
        sequence, so that the live readings after it are no gap."""
        if reading.seq is not None and reading.seq > self._last_seq.get(reading.device, -1):
            self._last_seq[reading.device] = reading.seq

    def presence(self, events: Sequence[PresenceEvent]) -> list[ConditionChange]:
        """Offline rules: a device or gateway went offline (or came back)."""
        changes: list[ConditionChange] = []
        for event in events:
            if event.device is not None:
                source = Source.of(event.device)
                rules = self._offline.get((event.device.family.value, False), ())
            else:
                source = Source(event.site, "gateway", event.gateway_id or "")
                rules = [r for rs in self._offline.values() for r in rs if r.condition.gateway]  # type: ignore[union-attr]
            for rule in rules:
                changes.extend(self._apply(rule, source, not event.online, None, event.at))
        return changes

    def tick(self, now: datetime) -> list[ConditionChange]:
        """What time alone makes happen: delays that ran out, escalations, events ageing out."""
        changes: list[ConditionChange] = []
        for key in list(self._waiting):
            slot, rule = self._slots[key], self._rules[key[0]]
            c = rule.condition
            if isinstance(c, EventMatch | Count | SeqGap):
                value, shown = _windowed_at(c, slot.cond, now)
                changes.extend(self._apply(rule, slot.source, value, shown, now))
                if not value and not slot.timing.active and not slot.timing.waiting(rule):
                    # windowed counts only fall with time: only a new observation can change this
                    self._waiting.discard(key)
            else:
                fired = due(rule, slot.timing, now)
                if fired:
                    changes.extend(self._fire(rule, key, slot, fired))
                elif not slot.timing.waiting(rule):
                    self._waiting.discard(key)
        return changes

    # --- evaluation --------------------------------------------------------------------------------

    def _applies(self, rule: Rule, device: DeviceRef) -> bool:
        """A rule for some device kinds only (e.g. water meters) needs the device's kind known."""
        return not rule.kinds_of or self._kind_of(device) in rule.kinds_of

    def _metric_rules(self, reading: Reading) -> list[Rule]:
        family = reading.device.family
        found: dict[str, Rule] = {}
        for metric in reading.metrics:
            for rule in self._by_metric.get((family, metric), ()):
                found.setdefault(rule.id, rule)
        return list(found.values())

    def _evaluate(self, rule: Rule, reading: Reading, values: dict[str, MetricValue]) -> list[ConditionChange]:
        c = rule.condition
        if isinstance(c, Zone):
            return self._on_zone(rule, c, reading, values)
        source = Source.of(reading.device)
        slot = self._slot(rule, source)
        result: cond.Result
        # ISA-18.2 deadband: only an active alarm needs the value back past the limit by it
        slot.cond["on"] = slot.timing.active
        if isinstance(c, Threshold):
            result = cond.threshold(c, slot.cond, values)
        elif isinstance(c, Band):
            result = cond.band(c, slot.cond, values)
        elif isinstance(c, Rate):
            result = cond.rate(c, slot.cond, values, reading.ts)
        elif isinstance(c, State):
            result = cond.state(c, values)
        elif isinstance(c, Composite):
            result = cond.composite(c, values)
        elif isinstance(c, Anomaly):
            result = cond.anomaly(c, slot.cond, reading.metrics)
        else:
            return []
        return self._apply(rule, source, *result, reading.ts)

    def _on_event(self, rule: Rule, reading: Reading, event: Any) -> list[ConditionChange]:
        c = rule.condition
        if isinstance(c, EventMatch):
            slot = self._slot(rule, Source.of(reading.device))
            return self._apply(rule, slot.source, *cond.event(c, slot.cond, (event,), reading.ts), reading.ts)
        if isinstance(c, Count) and cond.count_matches(c, event):
            group = str(event.attrs.get(c.group_by, "")) if c.group_by else None
            slot = self._slot(rule, Source.of(reading.device, group or None))
            return self._apply(rule, slot.source, *cond.count(c, slot.cond, event, reading.ts), reading.ts)
        return []

    def _on_seq(self, reading: Reading, seq: int) -> list[ConditionChange]:
        """A gap in the device's counter (a counter that goes back is a device restart, not a gap)."""
        last = self._last_seq.get(reading.device)
        self._last_seq[reading.device] = seq
        if last is None or seq <= last + 1:
            return []
        changes: list[ConditionChange] = []
        for rule in self._by_seq.get(reading.device.family, ()):
            if self._applies(rule, reading.device):
                slot = self._slot(rule, Source.of(reading.device))
                result = cond.seq_gap(rule.condition, slot.cond, seq - last - 1, reading.ts)  # type: ignore[arg-type]
                changes.extend(self._apply(rule, slot.source, *result, reading.ts))
        return changes

    def _on_zone(self, rule: Rule, c: Zone, reading: Reading, values: dict[str, MetricValue]) -> list[ConditionChange]:
        zone = self._zone_of(reading.device)
        if zone is None:
            return []
        members = self._zones[(rule.id, f"{reading.device.site}/{zone}")]
        members[reading.device.key] = bool(c.when.test(dict(values)))
        count = sum(members.values())
        source = Source(reading.device.site, "zone", zone)
        return self._apply(rule, source, count >= c.at_least, count, reading.ts)

    def _apply(self, rule: Rule, source: Source, condition: bool | None, value: Any,
               at: datetime) -> list[ConditionChange]:
        key = (rule.id, source.key)
        slot = self._slot(rule, source)
        if rule.schedule is not None and condition and not _armed(rule, at):
            condition = False
        fired = self._fire(rule, key, slot, step(rule, slot.timing, condition, value, at))
        if rule.id in self._live:
            vector.track(self._live[rule.id], source.key, slot.timing)
        return fired

    def _fire(self, rule: Rule, key: StateKey, slot: _Slot, fired: list[Any]) -> list[ConditionChange]:
        self._dirty.add(key)
        if slot.timing.waiting(rule) or isinstance(rule.condition, WINDOWED):
            self._waiting.add(key)
        else:
            self._waiting.discard(key)
        value = slot.timing.value
        return [ConditionChange(kind, rule, slot.source, at, value, grade) for kind, at, grade in fired]

    def _slot(self, rule: Rule, source: Source) -> _Slot:
        key = (rule.id, source.key)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(source)
        return slot

    # --- durability --------------------------------------------------------------------------------

    def take_dirty(self) -> dict[StateKey, dict[str, Any] | None]:
        """States changed since the last call (None: forget this key), for saving."""
        out: dict[StateKey, dict[str, Any] | None] = {}
        for key in self._dirty:
            slot = self._slots.get(key)
            out[key] = None if slot is None else {
                "source": [slot.source.site, slot.source.family, slot.source.id, slot.source.group],
                "timing": slot.timing.to_json(), "cond": slot.cond}
        self._dirty.clear()
        return out

    def restore(self, states: dict[StateKey, dict[str, Any]]) -> None:
        """Put saved states back (states of unknown rules are ignored)."""
        for key, data in states.items():
            if key[0] not in self._rules:
                continue
            slot = _Slot(Source(*data["source"]), Timing.from_json(data["timing"]), data["cond"])
            self._slots[key] = slot
            if slot.timing.waiting(self._rules[key[0]]) or isinstance(self._rules[key[0]].condition, WINDOWED):
                self._waiting.add(key)
        self._live = vector.live_sources(self._slots, self._rules)

    def active(self) -> list[tuple[str, str]]:
        return [key for key, slot in self._slots.items() if slot.timing.active]


def _windowed_at(c: EventMatch | Count | SeqGap, st: dict[str, Any], now: datetime) -> cond.Result:
    """Conditions over a time window change with time alone: events age out."""
    if isinstance(c, EventMatch):
        return cond.event_at(c, st, now)
    if isinstance(c, Count):
        return cond.count_at(c, st, now)
    return cond.seq_gap_at(c, st, now)


def _armed(rule: Rule, at: datetime) -> bool:
    assert rule.schedule is not None
    local = at.astimezone(ZoneInfo(rule.schedule.timezone))
    return any(window.contains(local) for window in rule.schedule.windows)
