"""Batch (numpy) evaluation of threshold and band rules gives exactly the changes of the
per-reading evaluation, whatever the batch boundaries, delays, deadbands, schedules and restarts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.domain import DeviceRef, Family, Reading
from rules.engine import RuleEngine
from rules.model import ConditionChange, Rule

T0 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)


def rule(rule_id: str, condition: dict[str, Any], **extra: Any) -> Rule:
    return Rule.model_validate({
        "id": rule_id, "family": "env", "condition": condition, "category": "air_quality", "grade": 3,
        "playbook": "air-quality", "message_zh": "{device} {value}", "message_en": "{device} {value}", "cite": "test",
        **extra})


RULES = [
    rule("co2.high", {"kind": "threshold", "metric": "co2_ppm", "op": ">", "limit": 1000, "deadband": 50}),
    rule("co2.delayed", {"kind": "threshold", "metric": "co2_ppm", "op": ">=", "limit": 1100},
         on_delay="2m", off_delay="1m", escalate=[{"after": "5m", "grade": 2}]),
    rule("temp.band", {"kind": "band", "metric": "temp_c", "low": 16, "high": 28, "deadband": 1}, off_delay="30s"),
    rule("temp.low", {"kind": "threshold", "metric": "temp_c", "op": "<", "limit": 12},
         schedule={"timezone": "Asia/Shanghai", "windows": [{"start": "00:00", "end": "06:00"}]}),
    rule("rh.rate", {"kind": "rate", "metric": "rh_pct", "window": "5m", "op": ">", "limit": 20}),
]


def series(seed: int, devices: int = 12, steps: int = 400) -> list[Reading]:
    """Random walks that cross the limits now and then, with some readings missing a metric."""
    rng = random.Random(seed)
    refs = [DeviceRef("s1", Family.ENV, f"d{i}") for i in range(devices)]
    level = {ref: [900.0, 22.0, 50.0] for ref in refs}
    out = []
    for k in range(steps):
        for ref in refs:
            co2, temp, rh = level[ref]
            rh = min(100.0, max(0.0, rh + rng.gauss(0, 8)))
            level[ref] = [max(350.0, co2 + rng.gauss(0, 60)), temp + rng.gauss(0, 1.2), rh]
            metrics: dict[str, Any] = {"co2_ppm": round(level[ref][0], 1), "temp_c": round(level[ref][1], 2),
                                       "rh_pct": round(level[ref][2], 1)}
            if rng.random() < 0.1:
                metrics.pop(rng.choice(list(metrics)))
            if rng.random() < 0.02:
                metrics["co2_ppm"] = "n/a"  # not a number: says nothing
            out.append(Reading(ref, T0 + timedelta(seconds=15 * k), metrics, historical=rng.random() < 0.03))
    return out


def run(engine: RuleEngine, readings: list[Reading], batch: int) -> list[ConditionChange]:
    changes = []
    for start in range(0, len(readings), batch):
        chunk = readings[start:start + batch]
        changes += engine.process(chunk)
        changes += engine.tick(chunk[-1].ts)
    return changes


def key(change: ConditionChange) -> tuple[str, str, datetime, str, int, str]:
    return change.rule.id, change.source.key, change.at, change.kind.value, int(change.grade), repr(change.value)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 7, 250, 5000])
def test_batch_evaluation_equals_per_reading_evaluation(seed: int, batch: int) -> None:
    readings = series(seed)
    # the same batches and ticks: the value shown with a change fired by a tick is the latest seen
    expected = run(RuleEngine(RULES, vectorized=False), readings, batch)
    got = run(RuleEngine(RULES), readings, batch)
    assert len(expected) > 50, "the series must actually cross the limits"
    assert sorted(map(key, got)) == sorted(map(key, expected))


def test_a_restart_between_batches_keeps_the_live_alarms_in_the_batch_path() -> None:
    """Active and pending alarms restored from saved state are still evaluated (and cleared)."""
    readings = series(4)
    half = len(readings) // 2
    expected = run(RuleEngine(RULES, vectorized=False), readings, 100)
    first = RuleEngine(RULES)
    got = run(first, readings[:half], 100)
    saved = {k: v for k, v in first.take_dirty().items() if v is not None}
    second = RuleEngine(RULES)
    second.restore(saved)
    got += run(second, readings[half:], 100)
    assert sorted(map(key, got)) == sorted(map(key, expected))


def test_quiet_readings_do_not_touch_the_state_of_idle_rules() -> None:
    """Nothing to save for a batch of normal readings: the durable state is not rewritten."""
    engine = RuleEngine(RULES[:1])
    device = DeviceRef("s1", Family.ENV, "quiet")
    engine.process([Reading(device, T0 + timedelta(seconds=i), {"co2_ppm": 500.0}) for i in range(100)])
    assert engine.take_dirty() == {}
    engine.process([Reading(device, T0 + timedelta(seconds=200), {"co2_ppm": 1500.0})])
    assert list(engine.take_dirty()) == [("co2.high", "s1/env/quiet")]
