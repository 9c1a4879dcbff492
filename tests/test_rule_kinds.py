"""Every rule kind and the shared timing, with explicit times (lists in, changes out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.domain import DeviceRef, Event, Family, Reading
from ingest.presence import Cause, PresenceEvent
from rules.engine import RuleEngine
from rules.model import ChangeKind, ConditionChange, Rule

T0 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)  # 08:00 in Asia/Shanghai
GAS = DeviceRef("s1", Family.GAS, "g1")
PUMP = DeviceRef("s1", Family.PUMP, "p1")
METER = DeviceRef("s1", Family.METER, "m1")
PANEL = DeviceRef("s1", Family.FIRE_PANEL, "fp1")


def rule(family: str, condition: dict[str, Any], **extra: Any) -> Rule:
    return Rule.model_validate({
        "id": extra.pop("id", "t.rule"), "family": family, "condition": condition, "category": "test", "grade": 3,
        "playbook": "test", "message_zh": "测试 {value}", "message_en": "test {value}", "cite": "test", **extra})


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def read(device: DeviceRef, seconds: float, events: tuple[Event, ...] = (), **metrics: Any) -> Reading:
    return Reading(device, at(seconds), metrics, events=events)


def summary(changes: list[ConditionChange]) -> list[tuple[str, float, int]]:
    return [(c.kind.value, (c.at - T0).total_seconds(), int(c.grade)) for c in changes]


def test_band_with_deadband() -> None:
    engine = RuleEngine([rule("pump", {"kind": "band", "metric": "pressure_kpa", "low": 200, "high": 600,
                                       "deadband": 20})])
    assert summary(engine.process([read(PUMP, 0, pressure_kpa=400), read(PUMP, 10, pressure_kpa=650)])) == [
        ("raise", 10, 3)]
    assert engine.process([read(PUMP, 20, pressure_kpa=590)]) == []  # inside, but not by the deadband
    assert summary(engine.process([read(PUMP, 30, pressure_kpa=570)])) == [("clear", 30, 3)]


def test_rate_of_change_over_a_window() -> None:
    engine = RuleEngine([rule("meter", {"kind": "rate", "metric": "volume_m3", "window": "1h", "op": "<", "limit": 0})])
    readings = [read(METER, 0, volume_m3=100.0), read(METER, 900, volume_m3=100.5), read(METER, 1800, volume_m3=99.0)]
    assert summary(engine.process(readings)) == [("raise", 1800, 3)]  # a cumulative register went backwards


def test_state_values_and_bits() -> None:
    engine = RuleEngine([rule("gas", {"kind": "state", "metric": "valve", "values": ["abnormal"]}, id="t.valve"),
                         rule("elevator", {"kind": "state", "metric": "fault_code", "values": [11]}, id="t.trap")])
    lift = DeviceRef("s1", Family.ELEVATOR, "l1")
    changes = engine.process([read(GAS, 0, valve="open"), read(GAS, 5, valve="abnormal"),
                              read(lift, 6, fault_code=11), read(lift, 20, fault_code=0)])
    assert [(c.rule.id, c.kind.value) for c in changes] == [("t.valve", "raise"), ("t.trap", "raise"),
                                                            ("t.trap", "clear")]
    bits = RuleEngine([rule("fire_panel", {"kind": "state", "metric": "status_word", "bit": 2})])
    assert bits.rules[0].condition.metrics == ("status_word",)


def test_event_holds_then_clears_by_time() -> None:
    engine = RuleEngine([rule("meter", {"kind": "event", "codes": ["cover_open"], "hold": "5m"})])
    changes = engine.process([read(METER, 0, (Event("cover_open"),), volume_m3=1.0)])
    assert summary(changes) == [("raise", 0, 3)]
    assert engine.tick(at(299)) == []
    assert summary(engine.tick(at(300))) == [("clear", 300, 3)]


def test_count_distinct_detectors_per_zone_confirms_fire() -> None:
    confirm = {"kind": "count", "codes": ["point_fire"], "attrs": {"component_type": [40]},
               "window": "5m", "at_least": 2, "distinct": "address", "group_by": "zone"}
    engine = RuleEngine([rule("fire_panel", confirm)])

    def point(seconds: float, zone: str, address: int, component: int = 40) -> Reading:
        event = Event("point_fire", {"zone": zone, "address": address, "component_type": component})
        return read(PANEL, seconds, (event,), fire=True)

    first = [point(0, "b1-f3", 7), point(5, "b1-f3", 7), point(6, "b1-f4", 9)]
    assert engine.process([*first,
                           point(7, "b1-f3", 12, component=30)]) == []  # same detector twice; heat; other zone
    [confirmed] = engine.process([point(30, "b1-f3", 8)])
    assert (confirmed.kind, confirmed.source.group, confirmed.value) == (ChangeKind.RAISE, "b1-f3", 2)


def test_offline_from_presence() -> None:
    engine = RuleEngine([rule("gas", {"kind": "offline"}, id="t.dev"), rule("gas", {"kind": "offline", "gateway": True},
                                                                          id="t.gw")])
    changes = engine.presence([PresenceEvent("s1", False, Cause.SILENCE, at(0), device=GAS),
                               PresenceEvent("s1", False, Cause.STATUS, at(1), gateway_id="gw-1")])
    assert [(c.rule.id, c.source.key) for c in changes] == [("t.dev", "s1/gas/g1"), ("t.gw", "s1/gateway/gw-1")]
    back = engine.presence([PresenceEvent("s1", True, Cause.REPORTED, at(60), device=GAS)])
    assert summary(back) == [("clear", 60, 3)]


def test_composite_gas_l2_while_the_fan_is_off() -> None:
    engine = RuleEngine([rule("gas", {"kind": "composite", "when": {"all": [
        {"metric": "lel_pct", "op": ">=", "value": 50}, {"not": {"metric": "fan", "op": "==", "value": True}}]}})])
    assert engine.process([read(GAS, 0, lel_pct=55.0)]) == []  # fan state unknown yet: no verdict
    assert summary(engine.process([read(GAS, 1, fan=False)])) == [("raise", 1, 3)]
    assert summary(engine.process([read(GAS, 2, fan=True)])) == [("clear", 2, 3)]


def test_zone_needs_two_devices_of_one_zone() -> None:
    zones = {"d1": "b1/f3", "d2": "b1/f3", "d3": "b2/f1"}
    engine = RuleEngine([rule("gas", {"kind": "zone", "when": {"metric": "lel_pct", "op": ">=", "value": 25},
                                      "at_least": 2})], zone_of=lambda d: zones.get(d.device_id))
    d1, d2, d3 = (DeviceRef("s1", Family.GAS, f"d{i}") for i in (1, 2, 3))
    assert engine.process([read(d1, 0, lel_pct=30.0), read(d3, 1, lel_pct=30.0)]) == []
    [change] = engine.process([read(d2, 2, lel_pct=26.0)])
    assert (change.source.key, change.value) == ("s1/zone/b1/f3", 2)


def test_anomaly_against_the_devices_own_baseline() -> None:
    engine = RuleEngine([rule("pump", {"kind": "anomaly", "metric": "motor_current_a", "samples": 100,
                                       "min_samples": 20, "z": 4})])
    normal = [read(PUMP, i, motor_current_a=20.0 + (i % 5) * 0.1) for i in range(60)]
    assert engine.process(normal) == []
    assert summary(engine.process([read(PUMP, 61, motor_current_a=35.0)])) == [("raise", 61, 3)]


def test_schedule_arms_the_rule_only_at_night_and_the_on_delay_needs_continuous_flow() -> None:
    night = {"timezone": "Asia/Shanghai", "windows": [{"start": "01:00", "end": "05:00"}]}
    engine = RuleEngine([rule("meter", {"kind": "threshold", "metric": "flow_m3h", "op": ">", "limit": 0.02},
                              schedule=night, on_delay="3h")])
    night_start = datetime(2026, 11, 21, 1, 0, tzinfo=UTC) - timedelta(hours=8)  # 01:00 local
    day = [Reading(METER, night_start + timedelta(hours=h), {"flow_m3h": 0.5}) for h in (-3, -2, -1)]
    assert engine.process(day) == []  # daytime flow is normal
    flows = [Reading(METER, night_start + timedelta(minutes=m), {"flow_m3h": 0.05}) for m in range(0, 200, 15)]
    [leak] = engine.process(flows)
    assert leak.at == night_start + timedelta(hours=3)


def test_off_delay_and_escalation() -> None:
    engine = RuleEngine([rule("elevator", {"kind": "state", "metric": "fault_code", "values": [11]},
                              off_delay="30s", escalate=[{"after": "10m", "grade": 2}, {"after": "30m", "grade": 1}])])
    lift = DeviceRef("s1", Family.ELEVATOR, "l1")
    engine.process([read(lift, 0, fault_code=11)])
    assert summary(engine.tick(at(600))) == [("regrade", 600, 2)]
    assert summary(engine.tick(at(1800))) == [("regrade", 1800, 1)]
    assert engine.process([read(lift, 1900, fault_code=0)]) == []  # off-delay running
    assert engine.process([read(lift, 1910, fault_code=11)]) == []  # back before it ran out: no flapping
    engine.process([read(lift, 1920, fault_code=0)])
    assert summary(engine.tick(at(1950))) == [("clear", 1950, 1)]  # clears at the grade it reached


def test_hot_reload_keeps_state_of_unchanged_rules_and_clears_removed_ones() -> None:
    keep = rule("gas", {"kind": "threshold", "metric": "lel_pct", "op": ">=", "limit": 25}, id="t.keep", on_delay="60s")
    drop = rule("gas", {"kind": "threshold", "metric": "lel_pct", "op": ">=", "limit": 10}, id="t.drop")
    engine = RuleEngine([keep, drop])
    engine.process([read(GAS, 0, lel_pct=30.0)])
    cleared = engine.replace_rules([keep], at(30))
    assert [(c.rule.id, c.kind.value) for c in cleared] == [("t.drop", "clear")]
    assert summary(engine.tick(at(60))) == [("raise", 60, 3)]  # the on-delay kept running over the reload


@pytest.mark.parametrize("bad", [
    {"kind": "threshold", "metric": "x", "op": "~", "limit": 1},
    {"kind": "band", "metric": "x", "low": 5, "high": 1},
    {"kind": "state", "metric": "x"},
    {"kind": "count", "codes": [], "window": "1m", "at_least": 1},
    {"kind": "rate", "metric": "x", "window": "soon", "op": ">", "limit": 1},
    {"kind": "teleport"},
])
def test_invalid_conditions_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError is a ValueError
        rule("gas", bad)


def test_historical_readings_never_raise() -> None:
    engine = RuleEngine([rule("gas", {"kind": "threshold", "metric": "lel_pct", "op": ">=", "limit": 25})])
    assert engine.process([Reading(GAS, at(0), {"lel_pct": 80.0}, historical=True)]) == []


def test_grade_follows_value_levels_and_falls_only_after_a_hold() -> None:
    engine = RuleEngine([rule("gas", {"kind": "threshold", "metric": "co_ppm", "op": ">=", "limit": 50},
                              grade=3, levels=[{"above": 100, "grade": 2}, {"above": 300, "grade": 1}],
                              level_hold="5m")])
    assert summary(engine.process([read(GAS, 0, co_ppm=60.0)])) == [("raise", 0, 3)]
    assert summary(engine.process([read(GAS, 10, co_ppm=350.0)])) == [("regrade", 10, 1)]  # rises at once
    assert engine.process([read(GAS, 20, co_ppm=150.0)]) == []  # eased: the hold starts
    assert engine.tick(at(319)) == []
    assert summary(engine.tick(at(320))) == [("regrade", 320, 2)]  # back to grade 2 after 5 min
    engine.process([read(GAS, 330, co_ppm=120.0), read(GAS, 400, co_ppm=320.0)])
    assert engine.process([read(GAS, 410, co_ppm=20.0)]) != []  # clears below the limit


def test_levels_must_be_more_severe_and_have_one_bound() -> None:
    with pytest.raises(ValueError, match="not more severe"):
        rule("gas", {"kind": "threshold", "metric": "co_ppm", "op": ">=", "limit": 50}, grade=2,
             levels=[{"above": 100, "grade": 3}])
    with pytest.raises(ValueError, match="exactly one"):
        rule("gas", {"kind": "threshold", "metric": "co_ppm", "op": ">=", "limit": 50},
             levels=[{"above": 100, "below": 10, "grade": 2}])


def test_seq_gaps_within_a_window_raise_and_age_out() -> None:
    r = rule("gas", {"kind": "seq_gap", "window": "1h", "at_least": 4})
    engine = RuleEngine([r])

    def seq(seconds: float, n: int) -> Reading:
        return Reading(GAS, at(seconds), {"lel_pct": 0.5}, seq=n)

    # 2 lost at 60 s, a counter reset at 120 s (device restart), a redelivery, then 2 more lost
    assert engine.process([seq(0, 1), seq(60, 4), seq(120, 1), seq(130, 1), seq(140, 2)]) == []
    changes = engine.process([seq(600, 5)])
    assert summary(changes) == [("raise", 600, 3)] and changes[0].value == 4
    assert engine.tick(at(3600)) == []  # the first gap (60 s) still within the hour
    assert summary(engine.tick(at(3661))) == [("clear", 3661, 3)]  # it aged out: 2 < 4
    assert engine.take_dirty()  # the gaps are durable state while they matter
    engine.process([seq(3700, 6), seq(3760, 7)])
    assert engine.take_dirty() == {}  # gapless readings write nothing


def test_a_store_and_forward_backlog_is_no_seq_gap() -> None:
    """After a broker outage the gateway sends the buffered readings (historical) before live ones."""
    engine = RuleEngine([rule("gas", {"kind": "seq_gap", "window": "1h", "at_least": 1})])
    backlog = [Reading(GAS, at(60 * n), {"lel_pct": 0.5}, seq=n, historical=True) for n in range(2, 30)]
    changes = engine.process([Reading(GAS, at(0), {"lel_pct": 0.5}, seq=1), *backlog,
                              Reading(GAS, at(1800), {"lel_pct": 0.5}, seq=30)])
    assert changes == []
