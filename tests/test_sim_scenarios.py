"""Scenario files: shipped ones (package data of `simulators`) play their stated signature; bad
ones are refused with file, line and field. All offline (no broker), at full speed."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import simulators
import simulators.scenario
from core.schema import is_known_event, metric_spec
from runtime.simulate_cli import simulate
from simulators.engine import SimEngine
from simulators.expect import Observed, check, observe
from simulators.offline import play
from simulators.scenario import (
    SCENARIO_DIR,
    BoundScenario,
    ScenarioError,
    bind,
    load_scenario,
    parse_scenario,
    shipped_scenarios,
)
from simulators.site import demo_estate

SHIPPED = shipped_scenarios()
SEEDS_EMERGENCIES = {  # the emergencies of the seed documents, each with at least one scenario
    "fire", "elevator_entrapment", "gas_leak", "power_outage", "water", "communications",
    "air_quality", "extreme_weather", "earthquake", "equipment_failure",
}


def bound(path: Path, seed: int = 1) -> BoundScenario:
    return bind(load_scenario(path), demo_estate(seed=seed))


def readings(scenario: BoundScenario, device_id: str, seed: int = 1) -> list[Observed]:
    run = play(scenario, demo_estate(seed=seed))
    return [r for r in observe(run.published)[0] if r.device_id == device_id]


def offset(scenario: BoundScenario, reading: Observed) -> timedelta:
    return reading.ts - scenario.scenario.start


def test_scenarios_ship_for_every_emergency_in_the_seeds() -> None:
    covered = {load_scenario(path).scenario.emergency for path in SHIPPED}
    assert covered >= SEEDS_EMERGENCIES
    assert {"sensor_fault", "tamper"} <= covered
    names = [load_scenario(path).scenario.name for path in SHIPPED]
    assert names == [path.stem for path in SHIPPED]
    weather = {load_scenario(path).scenario.name for path in SHIPPED
               if load_scenario(path).scenario.emergency == "extreme_weather"}
    assert weather >= {"rainstorm-flooding", "heat-wave", "cold-wave"}  # 台风暴雨, 高温酷暑, 寒潮冰雪 (seed 000)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenario_plays_its_signature_with_schema_valid_data(path: Path) -> None:
    scenario = bound(path)
    assert scenario.scenario.expect, "a shipped scenario states its signature"
    run = play(scenario, demo_estate(seed=1))
    assert check(scenario.scenario, run.start, run.published) == []
    site = demo_estate()
    for reading in observe(run.published)[0]:
        family = site.devices[reading.device_id].model.family
        for name, value in reading.metrics.items():
            spec = metric_spec(family, name)
            assert spec is not None
            spec.check(value)
        assert all(is_known_event(family, e["code"]) for e in reading.events)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_the_signature_is_the_scenarios_not_the_sites(path: Path) -> None:
    """Without its steps, a scenario's expectations do not all hold: they test the scenario."""
    scenario = bound(path)
    site = demo_estate(seed=1).only(scenario.devices | _behind(scenario))
    run = play(BoundScenario(scenario.scenario, ()), site, focus=False)
    assert check(scenario.scenario, run.start, run.published) != []


def _behind(scenario: BoundScenario) -> set[str]:
    site = demo_estate()
    return {d.ref.device_id for gw in scenario.gateways for d in site.on_gateway(gw)}


def test_shipped_scenarios_hold_for_other_seeds_too() -> None:
    for path in SHIPPED:
        scenario = bound(path, seed=11)
        run = play(scenario, demo_estate(seed=11))
        assert check(scenario.scenario, run.start, run.published) == [], path.name


def test_gas_leak_crosses_the_two_alarm_levels_at_the_stated_times_and_clears_after_close_valve() -> None:
    scenario = bound(SCENARIO_DIR / "gas-leak-canteen.yaml")
    lel = readings(scenario, "gd-b2-canteen")
    first_25 = next(r for r in lel if r.metrics["lel_pct"] >= 25)
    first_50 = next(r for r in lel if r.metrics["lel_pct"] >= 50)
    assert abs(offset(scenario, first_25) - timedelta(minutes=7)) <= timedelta(minutes=1)
    assert abs(offset(scenario, first_50) - timedelta(minutes=12)) <= timedelta(minutes=1)

    site = demo_estate()
    steps = [s for s in scenario.steps if s.device_id == "gd-b2-canteen"]
    engine = SimEngine(site.only(["gd-b2-canteen"]), scenario.scenario.start, steps)
    start = scenario.scenario.start
    for minute in range(0, 13):
        engine.step(start + timedelta(minutes=minute))
    ack = engine.command("gd-b2-canteen", {"id": "c1", "command": "close_valve"}, start + timedelta(minutes=13))
    assert (ack.status, ack.reason) == ("done", None)
    after = engine.step(start + timedelta(minutes=13)).readings
    assert after[0][1].metrics["valve"] == "closed"  # reported at once, not at the next interval
    later = engine.step(start + timedelta(minutes=28)).readings
    assert later[0][1].metrics["lel_pct"] < 10  # the gas clears with the source shut off


def test_entrapment_sets_fault_11_and_keeps_the_passenger_flag_until_released() -> None:
    scenario = bound(SCENARIO_DIR / "elevator-entrapment.yaml")
    lift = readings(scenario, "el-b2-1")
    trapped = [r for r in lift if timedelta(minutes=1) <= offset(scenario, r) < timedelta(minutes=26)]
    assert len(trapped) >= 40
    assert all(r.metrics["fault_code"] == 11 and r.metrics["passenger"] is True for r in trapped)
    assert trapped[0].ts == scenario.scenario.start + timedelta(minutes=1)  # reported at once
    released = [r for r in lift if offset(scenario, r) >= timedelta(minutes=26)]
    assert released[0].metrics["fault_code"] == 0 and released[0].metrics["passenger"] is False


def test_gateway_offline_buffers_and_replays_in_order_as_historical() -> None:
    scenario = bound(SCENARIO_DIR / "gateway-offline-b2.yaml")
    run = play(scenario, demo_estate())
    lift = [r for r in observe(run.published)[0] if r.device_id == "el-b2-1"]
    assert [r.seq for r in lift] == list(range(1, len(lift) + 1))  # nothing lost, nothing reordered
    replayed = [r for r in lift if r.historical]
    assert len(replayed) == 20  # 10 minutes every 30 s
    assert all(r.published_at == scenario.scenario.start + timedelta(minutes=15) for r in replayed)
    assert run.links["gw-b2"].stats.replayed > 0 and run.links["gw-b2"].stats.dropped == 0


def test_batch_mode_publishes_the_same_readings_as_per_device_telemetry() -> None:
    scenario = bound(SCENARIO_DIR / "gateway-offline-b2.yaml")
    single = observe(play(scenario, demo_estate()).published)[0]
    batched_run = play(scenario, demo_estate(), mode="batch")
    batched = observe(batched_run.published)[0]
    key = lambda r: (r.device_id, r.seq)  # noqa: E731
    assert sorted((key(r), r.metrics, r.historical) for r in single) == \
        sorted((key(r), r.metrics, r.historical) for r in batched)
    assert any("/gateway/gw-b2/batch" in m.topic for m in batched_run.published)


GOOD = """\
name: t
title: t
title_zh: t
emergency: gas_leak
duration: 10m
steps:
  - {at: 1m, device: gd-b2-canteen, do: leak, to: 60, over: 5m}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("device: gd-b2-canteen", "device: gd-nowhere"),
         "x.yaml:7: steps[0].device: site demo has no device 'gd-nowhere'"),
        (GOOD.replace("do: leak", "do: explode"), "x.yaml:7: steps[0].do: gd-b2-canteen (gas) has no action 'explode'"),
        (GOOD.replace("to: 60", "to: lots"), "x.yaml:7: steps[0].to: Input should be a valid number"),
        (GOOD.replace("over: 5m", "over: 5 fortnights"), "x.yaml:7: steps[0].over: duration '5 fortnights' is not"),
        (GOOD.replace("over: 5m", "over: 5m, speed: 3"), "x.yaml:7: steps[0].speed: Extra inputs are not permitted"),
        (GOOD + "  - {at: 2m, device: gd-b2-canteen, do: ramp, metric: lel, to: 5, over: 1m}\n",
         "x.yaml:8: steps[1].metric: gd-b2-canteen (gas) has no metric 'lel'"),
        (GOOD + "  - {at: 2m, device: gd-b2-canteen, do: set, metrics: {valve: ajar}}\n",
         "x.yaml:8: steps[1].metrics: valve must be one of open, closed, abnormal"),
        (GOOD + "  - {at: 2m, device: gd-b2-canteen, do: event, code: boom}\n",
         "x.yaml:8: steps[1].code: gas has no event 'boom'"),
        (GOOD + "  - {at: 2m, device: fp-b1, do: detector_alarm, zone: b1-f99-z1}\n",
         "x.yaml:8: steps[1].zone: fp-b1 has no zone 'b1-f99-z1'"),
        (GOOD + "  - {at: 2m, device: el-b1-1, do: fault, code: 42}\n", "x.yaml:8: steps[1].code: "),
        (GOOD.replace("emergency: gas_leak", "emergency: alien_invasion"), "x.yaml:4: emergency: Input should be"),
        (GOOD.replace("duration: 10m\n", ""), "x.yaml:1: duration: Field required"),
        (GOOD + "expect:\n  - {check: crosses, device: gd-b2-canteen, metric: lel_pct, at: 3m}\n",
         "x.yaml:9: expect[0].above: Field required"),
        (GOOD + "expect:\n  - {check: holds, device: gd-b2-canteen, metric: valve, equals: shut, "
                "from: 0s, until: 1m}\n",
         "x.yaml:9: expect[0].equals: valve must be one of"),
        (GOOD + "  - {at: 2m, gateway: gw-b9, do: offline, for: 1m}\n", "x.yaml:8: steps[1].gateway: site demo has no"),
        (GOOD + "  - [not, a, step]\n", "x.yaml:8: steps[1]: Input should be a valid dictionary"),
        ("name: t\ntitle: [unclosed\n", "x.yaml:3: not valid YAML"),
    ],
)
def test_bad_scenario_files_are_refused_naming_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        bind(parse_scenario(text, "x.yaml"), demo_estate())
    assert any(problem.startswith(expected) for problem in caught.value.problems), caught.value.problems


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = GOOD + "  - {at: 2m, device: nope, do: leak}\n  - {at: 3m, device: gd-b2-canteen, do: nope}\n"
    with pytest.raises(ScenarioError) as caught:
        bind(parse_scenario(text, "x.yaml"), demo_estate())
    assert [p.split(":")[1] for p in caught.value.problems] == ["8", "9"]


def test_fmon_simulate_check_reports_each_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("do: leak", "do: explode"), encoding="utf-8")
    good = SCENARIO_DIR / "fire-false-alarm.yaml"
    run = CliRunner().invoke(simulate, ["check", str(good), str(bad)])
    assert run.exit_code == 1
    assert f"ok     {good}: 2 steps, 5 expectations" in run.stdout
    assert f"{bad}:7: steps[0].do: gd-b2-canteen (gas) has no action 'explode'" in run.stderr
    assert CliRunner().invoke(simulate, ["check", str(good)]).exit_code == 0


def test_the_scenarios_ship_inside_the_simulators_package() -> None:
    """The wheel and the Docker image hold only the import packages: the scenarios are package data."""
    root = Path(__file__).resolve().parents[1]
    package = Path(simulators.__file__).resolve().parent
    assert package / "scenarios" == SCENARIO_DIR and len(SHIPPED) >= 16
    wheel = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]["build"]
    assert "simulators" in wheel["targets"]["wheel"]["packages"]
    assert "COPY simulators ./simulators" in (root / "Dockerfile").read_text(encoding="utf-8")
    assert not list((root / "docs" / "scenarios").glob("*.yaml")), "one copy only: simulators/scenarios"


def test_fmon_simulate_check_fails_when_it_finds_no_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulators.scenario, "SCENARIO_DIR", tmp_path)  # an install without its package data
    run = CliRunner().invoke(simulate, ["check"])
    assert run.exit_code == 1
    assert f"no scenario files found in {tmp_path}" in run.stderr


def test_the_cold_wave_freezes_the_riser_and_the_heat_wave_loads_the_incomer() -> None:
    cold = bound(SCENARIO_DIR / "cold-wave.yaml")
    water = readings(cold, "wm-b1-main")
    frozen = [r for r in water if timedelta(hours=4) <= offset(cold, r) < timedelta(hours=7)]
    assert frozen and all(r.metrics["flow_m3h"] == 0 for r in frozen)
    assert any(r.metrics["flow_m3h"] > 0 for r in water if offset(cold, r) >= timedelta(hours=7))
    heat = bound(SCENARIO_DIR / "heat-wave.yaml")
    power = [r.metrics["power_kw"] for r in readings(heat, "em-b1-main") if offset(heat, r) >= timedelta(hours=2)]
    assert power and min(power) > 900
