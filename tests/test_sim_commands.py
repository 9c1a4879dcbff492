"""Commands from fmon, at the engine (no broker): carried out or refused with a reason, and the
device reports its new state at once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from simulators.engine import SimEngine
from simulators.site import demo_estate
from simulators.timebase import CHINA_TZ

START = datetime(2026, 3, 2, 9, 0, tzinfo=CHINA_TZ)


def engine_for(*device_ids: str) -> SimEngine:
    engine = SimEngine(demo_estate().only(device_ids), START)
    engine.step(START)
    return engine


def command(engine: SimEngine, device_id: str, body: Any, after_s: float = 1) -> tuple[str, str | None, dict[str, Any]]:
    """Send a command; return the ack's status and reason, and the device's next reading's metrics."""
    now = START + timedelta(seconds=after_s)
    ack = engine.command(device_id, body, now)
    readings = {r.device.device_id: r for _, r in engine.step(now).readings}
    return ack.status, ack.reason, dict(readings[device_id].metrics) if device_id in readings else {}


@pytest.mark.parametrize(
    ("device_id", "name", "args", "metric", "value"),
    [
        ("gd-b2-canteen", "close_valve", {}, "valve", "closed"),
        ("gd-b2-canteen", "start_fan", {}, "fan", True),
        ("wm-b2-main", "close_valve", {}, "valve", "closed"),
        ("em-b2-main", "trip", {}, "power_kw", 0.0),
        ("pump-fire-1", "start", {}, "running", True),
        ("fan-b1-garage", "start_fan", {}, "running", True),
        ("el-b1-1", "recall", {"floor": 1, "mode": "parking"}, "service_mode", "parking"),
        ("fp-b1", "set_mode", {"auto": False}, "auto", False),
    ],
)
def test_a_command_is_carried_out_and_reported_at_once(device_id: str, name: str, args: dict[str, Any],
                                                        metric: str, value: object) -> None:
    status, reason, metrics = command(engine_for(device_id), device_id, {"id": "c1", "command": name, "args": args})
    assert (status, reason) == ("done", None)
    assert metrics[metric] == value


@pytest.mark.parametrize(
    ("device_id", "body", "reason"),
    [
        ("em-b2-main", {"id": "c1", "command": "close_valve"}, "has a relay, not a valve"),
        ("wm-b2-main", {"id": "c1", "command": "trip"}, "has a valve, not a relay"),
        ("env-b1-f2-office", {"id": "c1", "command": "start_fan"}, "supported: none"),
        ("el-b1-1", {"id": "c1", "command": "recall", "args": {"floor": 40}}, "floor 40 is not served"),
        ("el-b1-1", {"id": "c1", "command": "recall", "floor": "lobby"}, "bad parameters for recall: floor"),
        ("pump-supply-1", {"id": "c1", "command": "start_fan"}, "not a fan"),
        ("gd-b2-canteen", {"command": "close_valve"}, "no string 'id'"),
        ("gd-b2-canteen", ["close_valve"], "a JSON object"),
    ],
)
def test_a_command_that_does_not_fit_is_refused_with_the_reason(device_id: str, body: Any, reason: str) -> None:
    status, why, _metrics = command(engine_for(device_id), device_id, body)
    assert status == "rejected"
    assert why is not None and reason in why


def test_commands_respect_the_state_of_the_equipment() -> None:
    engine = engine_for("el-b2-1", "pump-sump-1", "gd-b2-canteen")
    lift, pump, gas = (engine.site.device(d).model for d in ("el-b2-1", "pump-sump-1", "gd-b2-canteen"))
    lift.act("entrapment", lift.parse_action("entrapment", {}), START)
    assert "trapped" in (command(engine, "el-b2-1", {"id": "a", "command": "recall"})[1] or "")
    assert "clear it on site" in (command(engine, "el-b2-1", {"id": "b", "command": "return_to_service"})[1] or "")

    pump.act("degrade", pump.parse_action("degrade", {"over": "1s"}), START)
    engine.step(START + timedelta(seconds=2))
    assert "repair" in (command(engine, "pump-sump-1", {"id": "c", "command": "reset"}, 3)[1] or "")

    gas.act("leak", gas.parse_action("leak", {"to": 60, "over": "1m"}), START)
    assert command(engine, "gd-b2-canteen", {"id": "d", "command": "close_valve"}, 120)[0] == "done"
    assert "re-test" in (command(engine, "gd-b2-canteen", {"id": "e", "command": "open_valve"}, 130)[1] or "")
    status, _reason, metrics = command(engine, "gd-b2-canteen", {"id": "f", "command": "open_valve"}, 1200)
    assert status == "done" and metrics["valve"] == "open" and metrics["lel_pct"] < 10


def test_a_repeated_command_id_is_answered_again_but_not_carried_out_twice() -> None:
    engine = engine_for("el-b1-1")
    first = engine.command("el-b1-1", {"id": "same", "command": "out_of_service"}, START)
    engine.site.device("el-b1-1").model.service_mode = "normal"  # someone put it back meanwhile
    again = engine.command("el-b1-1", {"id": "same", "command": "out_of_service"}, START + timedelta(seconds=5))
    assert again == first
    assert engine.site.device("el-b1-1").model.service_mode == "normal"
