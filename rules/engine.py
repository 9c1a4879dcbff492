"""The rule engine: rules indexed by (family, metric), state per (rule, source).

The cost per reading depends on the rules that match its family and metrics, not on the
number of rules loaded. Historical (store-and-forward) readings never raise or clear alarms.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from core.domain import DeviceRef, Family, Reading
from rules import threshold
from rules.model import ConditionChange, ThresholdRule
from rules.threshold import ThresholdState

StateKey = tuple[str, DeviceRef]


class RuleEngine:
    def __init__(self, rules: Iterable[ThresholdRule]) -> None:
        self._index: dict[tuple[Family, str], list[ThresholdRule]] = defaultdict(list)
        self._rules: dict[str, ThresholdRule] = {}
        for rule in rules:
            if rule.id in self._rules:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            self._rules[rule.id] = rule
            self._index[(rule.family, rule.metric)].append(rule)
        self._states: dict[StateKey, ThresholdState] = {}
        self._pending: set[StateKey] = set()

    @property
    def rules(self) -> list[ThresholdRule]:
        return list(self._rules.values())

    def process(self, readings: Sequence[Reading]) -> list[ConditionChange]:
        """Evaluate a batch of live readings in order; return the condition changes."""
        changes: list[ConditionChange] = []
        for reading in readings:
            if reading.historical:
                continue
            family = reading.device.family
            for metric in reading.metrics:
                for rule in self._index.get((family, metric), ()):
                    changes.extend(self._apply(rule, reading))
        return changes

    def tick(self, now: datetime) -> list[ConditionChange]:
        """Fire on-delays that have run out without a new reading."""
        changes: list[ConditionChange] = []
        for key in list(self._pending):
            rule_id, source = key
            state, fired = threshold.tick(self._rules[rule_id], self._states[key], source, now)
            self._store(key, state)
            changes.extend(fired)
        return changes

    def _apply(self, rule: ThresholdRule, reading: Reading) -> list[ConditionChange]:
        key = (rule.id, reading.device)
        state, changes = threshold.evaluate(rule, self._states.get(key, ThresholdState()), reading)
        self._store(key, state)
        return changes

    def _store(self, key: StateKey, state: ThresholdState) -> None:
        self._states[key] = state
        if state.breached_since is not None and not state.active:
            self._pending.add(key)
        else:
            self._pending.discard(key)
