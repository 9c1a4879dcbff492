"""Rules as code: YAML rule tests, `fmon rules check/test/backtest`, and `scan` on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from core.domain import DeviceRef, Family, Reading
from rules.backtest import replay
from rules.loader import load_rules
from rules.testing import expand_series, format_offset, run_test_file, run_tests
from runtime.rules_cli import rules
from storage.influx import InfluxV1Store
from storage.sqlite_telemetry import SqliteTelemetryStore
from storage.telemetry import TelemetryStore

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
PUMP = DeviceRef("s1", Family.PUMP, "p1")
ROOM = DeviceRef("s1", Family.ENV, "room-1")

VIBRATION_RULE = """\
  - id: t.vibration
    family: pump
    condition: {kind: threshold, metric: vibration_mm_s, op: ">", limit: 7.1, deadband: 0.5}
    on_delay: 30s
    category: equipment
    grade: 3
    playbook: equipment-failure
    message_zh: "{device} 振动 {value:.1f} mm/s"
    message_en: "{device} vibration {value:.1f} mm/s"
    cite: "ISO 10816-3 (test)"
"""
RULE_FILE = "version: 1\nrules:\n" + VIBRATION_RULE

RULE_TEST = """\
version: 1
rule_files: [rules.yaml]
tests:
  - name: vibration above 7.1 mm/s for 30 s
    start: 2026-11-21T08:00:00+08:00
    devices:
      pump: {site: s1, family: pump, id: p1}
    input:
      - {at: 0s, device: pump, metric: vibration_mm_s, every: 20s, values: "8x3 6"}
    expect:
      - {at: 30s, rule: t.vibration, kind: raise, device: pump, grade: 3}
      - {at: %s, rule: t.vibration, kind: clear, device: pump}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def cli(*args: str) -> Result:
    return CliRunner().invoke(rules, list(args), prog_name="fmon rules")


# --- YAML rule tests ---------------------------------------------------------------------------------

def test_a_correct_rule_test_passes(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", RULE_FILE)
    result = run_test_file(write(tmp_path / "t.yaml", RULE_TEST % "80s"))
    assert result.passed, "\n".join(result.report())
    assert result.report() == [f"{tmp_path / 't.yaml'}:4: vibration above 7.1 mm/s for 30 s: ok"]


def test_a_wrong_rule_test_fails_with_a_diff_in_offsets(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", RULE_FILE)
    result = run_test_file(write(tmp_path / "t.yaml", RULE_TEST % "90s"))
    assert not result.passed
    report = result.report()
    assert report[0].endswith(":4: vibration above 7.1 mm/s for 30 s: FAILED")
    assert [line.split()[:3] for line in report[1:4]] == [
        ["30s", "raise", "t.vibration"], ["+", "1m20s", "clear"], ["-", "1m30s", "clear"]]
    assert "value 6.0" in report[2]
    assert "expected but not produced" in report[-1]


def test_unexpected_changes_fail_unless_the_test_is_not_strict(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", RULE_FILE)
    text = (RULE_TEST % "80s").replace("      - {at: 80s, rule: t.vibration, kind: clear, device: pump}\n", "")
    strict = run_test_file(write(tmp_path / "strict.yaml", text))
    assert not strict.passed
    assert strict.report()[2].split()[:3] == ["+", "1m20s", "clear"]
    loose = text.replace("    input:", "    strict: false\n    input:")
    assert run_test_file(write(tmp_path / "loose.yaml", loose)).passed


def test_inline_rules_events_ticks_and_gateways(tmp_path: Path) -> None:
    text = """\
version: 1
rules:
  - {id: t.cover, family: meter, condition: {kind: event, codes: [cover_open], hold: 5m}, category: tamper,
     grade: 4, playbook: x, message_zh: "开盖", message_en: "cover open", cite: test}
  - {id: t.gw, family: meter, condition: {kind: offline, gateway: true}, on_delay: 2m, category: comms,
     grade: 4, playbook: x, message_zh: "离线", message_en: "offline", cite: test}
tests:
  - start: 2026-11-21T00:00:00Z
    tick_every: null
    ticks: [2m, 5m30s]       # an on-delay or a hold runs out only on a tick
    devices:
      meter: {family: meter, id: m1}
      gw: {family: gateway, id: gw-1}
    input:
      - {at: 10s, device: meter, events: [cover_open]}
      - {at: 0s, device: gw, offline: true}
      - {at: 4m, device: gw, offline: false}
    expect:
      - {at: 10s, rule: t.cover, kind: raise, device: meter}
      - {at: 2m, rule: t.gw, kind: raise, source: s1/gateway/gw-1}
      - {at: 4m, rule: t.gw, kind: clear, device: gw}
      - {at: 5m30s, rule: t.cover, kind: clear, device: meter}
"""
    result = run_test_file(write(tmp_path / "t.yaml", text))
    assert result.passed, "\n".join(result.report())


def test_errors_in_a_test_file_name_the_line_and_field(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", RULE_FILE)
    text = (RULE_TEST % "80s").replace("at: 30s, rule", "at: 30 seconds, rule").replace("+08:00", "")
    report = run_test_file(write(tmp_path / "t.yaml", text)).report()
    assert f"{tmp_path / 't.yaml'}:5: tests[0].start: Input should have timezone info" in report
    assert any(line.startswith(f"{tmp_path / 't.yaml'}:11: tests[0].expect[0].at: invalid offset '30 seconds'")
               for line in report), report


def test_unknown_devices_and_rules_are_named_with_their_lines(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", RULE_FILE)
    text = (RULE_TEST % "80s").replace("device: pump, metric", "device: pmup, metric").replace(
        "rule: t.vibration, kind: raise", "rule: t.vibe, kind: raise")
    (case,) = run_test_file(write(tmp_path / "t.yaml", text)).cases
    assert not case.passed
    assert f"{tmp_path / 't.yaml'}:9: tests[0].input[0].device: no device 'pmup' in devices (pump)" in case.problems
    assert f"{tmp_path / 't.yaml'}:11: tests[0].expect[0].rule: no rule 't.vibe' in the rule files" in case.problems


def test_broken_rule_files_of_a_test_are_reported(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", RULE_FILE.replace("    grade: 3\n", ""))
    result = run_test_file(write(tmp_path / "t.yaml", RULE_TEST % "80s"))
    assert result.problems == (f"{tmp_path / 'rules.yaml'}:3: rules[0].grade: Field required",)


def test_series_notation_follows_promtool() -> None:
    assert expand_series("1 -2+4x3 1-2x2 _x2 5x1 0.5") == [1, -2, 2, 6, 10, 1, -1, -3, None, None, 5, 5, 0.5]
    with pytest.raises(ValueError, match="invalid series value '1\\+x3'"):
        expand_series("1+x3")


def test_offsets_print_as_the_test_format_reads_them() -> None:
    assert [format_offset(ms) for ms in (0, 1500, 90_000, 7_200_000, 5_430_000, -30_000)] == [
        "0s", "1.5s", "1m30s", "2h", "1h30m30s", "-30s"]


def test_the_shipped_example_tests_pass() -> None:
    results = run_tests([ROOT / "rules" / "tests"])
    assert results and all(r.passed for r in results), "\n".join(line for r in results for line in r.report())


# --- fmon rules check / test -------------------------------------------------------------------------

def test_check_passes_on_the_shipped_library() -> None:
    result = cli("check")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")
    assert "family" in result.output and "total" in result.output


def test_check_passes_on_a_good_file_and_summarises_it(tmp_path: Path) -> None:
    result = cli("check", str(write(tmp_path / "good.yaml", RULE_FILE)))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["ok: 1 rules in 1 file(s)", "family  threshold  total",
                                          "pump            1      1"]


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("kind: threshold", "kind: treshold", 5, "rules[0].condition: Input tag 'treshold'"),
        ("on_delay: 30s", "on_delay: 30 sec", 6, "rules[0].on_delay: invalid duration '30 sec'"),
        ("    grade: 3\n", "", 3, "rules[0].grade: Field required"),
        ("metric: vibration_mm_s", "metric: vibration_mms", 5,
         "rules[0].condition.metric: pump devices have no metric 'vibration_mms'"),
        ("{value:.1f} mm/s\"\n    cite", "{value:.1f} {limt}\"\n    cite", 11,
         "rules[0].message_en: unknown placeholder {limt}"),
    ],
)
def test_check_names_file_and_line_of_each_problem(tmp_path: Path, old: str, new: str, line: int,
                                                   message: str) -> None:
    path = write(tmp_path / "bad.yaml", RULE_FILE.replace(old, new))
    result = cli("check", str(path))
    assert result.exit_code == 1
    assert f"{path}:{line}: {message}" in result.output
    assert "1 problem(s) in 1 file(s)" in result.output


def test_check_reports_every_problem_of_every_file(tmp_path: Path) -> None:
    one = write(tmp_path / "a.yaml", RULE_FILE.replace("on_delay: 30s", "on_delay: soon"))
    two = write(tmp_path / "b.yaml", RULE_FILE.replace("grade: 3\n", "grade: 7\n"))
    result = cli("check", str(one), str(two))
    assert result.exit_code == 1
    assert f"{one}:6: rules[0].on_delay" in result.output and f"{two}:8: rules[0].grade" in result.output


def test_rules_test_command_exit_codes(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", RULE_FILE)
    good = write(tmp_path / "good.yaml", RULE_TEST % "80s")
    ok = cli("test", str(good))
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines()[-1] == "1 passed, 0 failed"
    bad = cli("test", str(good), str(write(tmp_path / "bad.yaml", RULE_TEST % "90s")))
    assert bad.exit_code == 1
    assert "FAILED" in bad.output and bad.output.splitlines()[-1] == "1 passed, 1 failed"


# --- scan and backtest -------------------------------------------------------------------------------

def history() -> list[Reading]:
    """Pump p1 vibrates above 7.1 mm/s from 10:00 to 10:05 (one reading a minute), a room
    is fine; both every minute from 09:55 to 10:15 (UTC), the pump's running flag included."""
    start = T0 + timedelta(hours=9, minutes=55)
    out = []
    for minute in range(20):
        ts = start + timedelta(minutes=minute)
        high = 5 <= minute < 10
        metrics = {"vibration_mm_s": 8.5 if high else 2.0, "running": True, "run_hours": 1200 + minute}
        out.append(Reading(PUMP, ts, metrics, seq=minute))
        out.append(Reading(ROOM, ts + timedelta(seconds=1), {"co2_ppm": 600.0}, historical=minute == 3))
    return out


@pytest.fixture(params=["sqlite", "influx"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TelemetryStore]:
    if request.param == "influx":
        opened: TelemetryStore = InfluxV1Store(request.getfixturevalue("influx_db"))
    else:
        opened = SqliteTelemetryStore(tmp_path / "telemetry.db")
    yield opened
    opened.close()


def test_scan_returns_what_was_written_in_time_order(store: TelemetryStore) -> None:
    written = history()
    store.write(written)
    scanned = list(store.scan(T0, T0 + timedelta(days=1)))
    key = [(r.ts, r.device, dict(r.metrics), r.historical) for r in written]
    assert [(r.ts, r.device, dict(r.metrics), r.historical) for r in scanned] == key
    assert type(scanned[0].metrics["run_hours"]) is float and scanned[0].metrics["running"] is True
    window = list(store.scan(written[2].ts, written[6].ts))  # half-open: [start, end)
    assert [r.ts for r in window] == [r.ts for r in written[2:6]]
    assert list(store.scan(T0, T0 + timedelta(days=1), site="elsewhere")) == []


def test_backtest_reports_the_alarm_the_history_would_have_raised(store: TelemetryStore, tmp_path: Path) -> None:
    store.write(history())
    report = replay(load_rules([write(tmp_path / "rules.yaml", RULE_FILE)]),
                    store.scan(T0, T0 + timedelta(days=1)), T0, T0 + timedelta(days=1))
    assert [(c.kind.value, c.rule.id, c.source.key, c.at) for c in report.changes] == [
        ("raise", "t.vibration", "s1/pump/p1", T0 + timedelta(hours=10, seconds=30)),
        ("clear", "t.vibration", "s1/pump/p1", T0 + timedelta(hours=10, minutes=5))]
    assert (report.readings, report.devices) == (40, 2)


def test_replay_ticks_on_data_time_between_sparse_readings(tmp_path: Path) -> None:
    rule_list = load_rules([write(tmp_path / "rules.yaml", RULE_FILE)])
    readings = [Reading(PUMP, T0, {"vibration_mm_s": 9.0}),
                Reading(PUMP, T0 + timedelta(seconds=31), {"vibration_mm_s": 2.0})]
    coarse = replay(rule_list, readings, T0, T0 + timedelta(minutes=1), tick_every=timedelta(minutes=1))
    fine = replay(rule_list, readings, T0, T0 + timedelta(minutes=1), tick_every=timedelta(seconds=1))
    # An on-delay that ran out fires at its own time even when the next tick comes after the
    # reading that ends the condition: coarse and fine ticking agree.
    expected = [("raise", 30), ("clear", 31)]
    assert [(c.kind.value, (c.at - T0).total_seconds()) for c in coarse.changes] == expected
    assert [(c.kind.value, (c.at - T0).total_seconds()) for c in fine.changes] == expected


def test_fmon_rules_backtest_on_the_configured_sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMON_ENVIRONMENT", "demo")
    monkeypatch.setenv("FMON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FMON_INFLUX_URL", raising=False)
    store = SqliteTelemetryStore(tmp_path / "data" / "telemetry.db")
    store.write(history())
    store.close()
    rule_file = write(tmp_path / "rules.yaml", RULE_FILE)
    result = cli("backtest", "--from", "2026-11-21T17:50+08:00", "--to", "2026-11-21T18:30+08:00",
                 "--rules", str(rule_file), "--site", "s1")
    assert result.exit_code == 0, result.output
    assert "note: no state database" in result.stderr  # so no zones or device kinds
    lines = result.stdout.splitlines()
    assert lines[0] == "replayed 40 readings of 2 devices, 2026-11-21T09:50:00.000Z to 2026-11-21T10:30:00.000Z"
    assert lines[1].split() == ["time", "rule", "source", "grade", "kind"]
    assert lines[2].split() == ["2026-11-21T10:00:30.000Z", "t.vibration", "s1/pump/p1", "3", "raise"]
    assert lines[3].split() == ["2026-11-21T10:05:00.000Z", "t.vibration", "s1/pump/p1", "3", "clear"]
    assert lines[-1].split() == ["t.vibration", "1", "1", "0"]
    assert not (tmp_path / "data" / "state.db").exists()  # no alarm or rule state written


def test_fmon_rules_backtest_on_influxdb(influx_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMON_ENVIRONMENT", "demo")
    monkeypatch.setenv("FMON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FMON_INFLUX_URL", influx_db)
    store = InfluxV1Store(influx_db)
    store.write(history())
    store.close()
    result = cli("backtest", "--from", "2026-11-21T10:00Z", "--to", "2026-11-21T10:03Z", "--warmup", "5m",
                 "--rules", str(write(tmp_path / "rules.yaml", RULE_FILE)))
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if line.startswith("2026-")]
    assert rows == [["2026-11-21T10:00:30.000Z", "t.vibration", "s1/pump/p1", "3", "raise"]]  # clear: after --to


METER_RULES = """\
version: 1
rules:
  - {id: t.water_flow, family: meter, device_kinds: [water], condition: {kind: threshold, metric: flow_m3h, op: ">",
     limit: 10}, category: water_leak, grade: 3, playbook: water-outage, message_zh: "水流", message_en: flow, cite: t}
  - {id: t.plant_flow, family: meter, condition: {kind: zone, when: {metric: flow_m3h, op: ">", value: 10}},
     category: water_leak, grade: 3, playbook: water-outage, message_zh: "区域", message_en: zone, cite: t}
"""


def test_backtest_takes_zones_and_device_kinds_from_the_registry(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.inventory import load_inventory
    from storage.state.database import StateDatabase
    from storage.state.registry import RegistryStore

    monkeypatch.setenv("FMON_ENVIRONMENT", "demo")
    monkeypatch.setenv("FMON_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FMON_INFLUX_URL", raising=False)
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    RegistryStore(db).apply(load_inventory(ROOT / "docs" / "examples" / "inventory.yaml"), T0)
    db.dispose()
    store = SqliteTelemetryStore(tmp_path / "telemetry.db")
    store.write([Reading(DeviceRef("demo", Family.METER, device), T0 + timedelta(minutes=1), {"flow_m3h": 20.0})
                 for device in ("wm-b2-main", "hm-b2-main")])  # a water and a heat meter, both in b2-plant
    store.close()
    result = cli("backtest", "--from", "2026-11-21T00:00Z", "--to", "2026-11-21T01:00Z",
                 "--rules", str(write(tmp_path / "rules.yaml", METER_RULES)))
    assert result.exit_code == 0, result.output
    rows = {tuple(line.split()[1:3]) for line in result.stdout.splitlines() if line.startswith("2026-")}
    assert rows == {("t.water_flow", "demo/meter/wm-b2-main"), ("t.plant_flow", "demo/zone/b2/b2-plant")}


def test_backtest_refuses_times_without_an_offset() -> None:
    result = cli("backtest", "--from", "2026-11-21T10:00", "--to", "2026-11-21T11:00Z")
    assert result.exit_code == 2
    assert "needs an offset" in result.output
