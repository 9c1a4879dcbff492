"""rules: threshold with on-delay and deadband, as lists in and lists out; time is passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.domain import DeviceRef, Family, Reading
from rules.engine import RuleEngine
from rules.loader import rule_by_id
from rules.model import ChangeKind, Source

CO2_HIGH = rule_by_id("env.co2_high")

ROOM = DeviceRef("s1", Family.ENV, "room-1")
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def co2(seconds: float, ppm: float, device: DeviceRef = ROOM, historical: bool = False) -> Reading:
    return Reading(device, T0 + timedelta(seconds=seconds), {"co2_ppm": ppm}, historical=historical)


def kinds(changes: list) -> list[tuple[str, float]]:  # type: ignore[type-arg]
    return [(c.kind.value, (c.at - T0).total_seconds()) for c in changes]


def test_co2_raises_only_after_held_for_60_seconds() -> None:
    engine = RuleEngine([CO2_HIGH])
    assert engine.process([co2(0, 1100), co2(30, 1200), co2(55, 1150)]) == []
    changes = engine.process([co2(60, 1180)])
    assert kinds(changes) == [("raise", 60)]
    assert changes[0].value == 1180
    assert changes[0].message("zh").startswith("room-1 二氧化碳浓度 1180 ppm")
    assert engine.process([co2(65, 1200)]) == []  # still active: no second raise


def test_a_dip_below_the_limit_restarts_the_on_delay() -> None:
    engine = RuleEngine([CO2_HIGH])
    changes = engine.process([co2(0, 1100), co2(40, 990), co2(50, 1100), co2(100, 1100), co2(110, 1100)])
    assert kinds(changes) == [("raise", 110)]


def test_deadband_keeps_the_alarm_until_clearly_back() -> None:
    engine = RuleEngine([CO2_HIGH])
    engine.process([co2(0, 1100), co2(60, 1100)])
    assert engine.process([co2(70, 990), co2(80, 960)]) == []  # within the 50 ppm deadband
    assert kinds(engine.process([co2(90, 940)])) == [("clear", 90)]


def test_tick_fires_a_pending_on_delay_without_new_readings() -> None:
    engine = RuleEngine([CO2_HIGH])
    engine.process([co2(0, 1300)])
    assert engine.tick(T0 + timedelta(seconds=59)) == []
    assert kinds(engine.tick(T0 + timedelta(seconds=60))) == [("raise", 60)]
    assert engine.tick(T0 + timedelta(seconds=120)) == []


def test_state_is_per_device() -> None:
    other = DeviceRef("s1", Family.ENV, "room-2")
    engine = RuleEngine([CO2_HIGH])
    changes = engine.process([co2(0, 1100), co2(30, 1100, other), co2(60, 1100), co2(60, 1100, other)])
    assert [(c.source, c.kind) for c in changes] == [(Source.of(ROOM), ChangeKind.RAISE)]


def test_historical_readings_never_raise_or_clear() -> None:
    engine = RuleEngine([CO2_HIGH])
    assert engine.process([co2(0, 1500, historical=True), co2(90, 1500, historical=True)]) == []
    engine.process([co2(100, 1500), co2(160, 1500)])
    assert engine.process([co2(170, 400, historical=True)]) == []


def test_readings_without_the_metric_are_ignored() -> None:
    engine = RuleEngine([CO2_HIGH])
    reading = Reading(ROOM, T0, {"temp_c": 40.0})
    assert engine.process([reading]) == []


def test_a_backlog_without_ticks_still_fires_an_expired_on_delay() -> None:
    """After a restart the spooled backlog arrives in one batch, with no tick in between."""
    engine = RuleEngine([CO2_HIGH])
    changes = engine.process([co2(0, 1100), co2(30, 1100), co2(65, 900)])
    assert kinds(changes) == [("raise", 60), ("clear", 65)]
