"""Device models: reproducible, schema-valid, and behaving like the equipment they stand in for.

Everything here runs offline (`run_offline`: the engine jumps from one due report to the next,
gateways publish into memory), so days of simulated time take well under a second.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest

from core.domain import Family
from core.schema import METER_KIND_METRICS, is_known_event, metric_spec
from simulators.expect import Observed, observe
from simulators.models import MeterModel
from simulators.offline import run_offline
from simulators.site import MEETING_ROOM, Site, demo_estate
from simulators.timebase import CHINA_TZ

MONDAY = datetime(2026, 3, 2, 0, 0, tzinfo=CHINA_TZ)


def readings_of(site: Site, days: float, start: datetime = MONDAY) -> dict[str, list[Observed]]:
    run = run_offline(site, start, timedelta(days=days))
    by_device: dict[str, list[Observed]] = defaultdict(list)
    for reading in observe(run.published)[0]:
        by_device[reading.device_id].append(reading)
    return by_device


def local_hour(reading: Observed) -> int:
    return reading.ts.astimezone(CHINA_TZ).hour


def assert_schema_valid(site: Site, by_device: dict[str, list[Observed]]) -> None:
    """What ingest checks (core.schema): every metric known, typed and in range; every event known."""
    for device_id, readings in by_device.items():
        model = site.devices[device_id].model
        for reading in readings:
            for name, value in reading.metrics.items():
                spec = metric_spec(model.family, name)
                assert spec is not None, f"{device_id}: unknown metric {name}"
                spec.check(value)
            for event in reading.events:
                assert is_known_event(model.family, event["code"]), f"{device_id}: unknown event {event}"
            if isinstance(model, MeterModel):
                assert set(reading.metrics) <= set(METER_KIND_METRICS[model.kind]), device_id


def test_the_same_seed_gives_the_same_messages_and_another_seed_does_not() -> None:
    def payloads(seed: int) -> list[tuple[str, bytes]]:
        run = run_offline(demo_estate(seed=seed), MONDAY, timedelta(hours=3))
        return [(m.topic, m.payload) for m in run.published]

    first = payloads(7)
    assert len(first) > 1000
    assert payloads(7) == first
    assert payloads(8) != first


def test_a_device_reads_the_same_alone_as_with_the_whole_site() -> None:
    """Values depend on the seed and the device id only, so scenario tests may simulate a subset."""
    alone = readings_of(demo_estate(seed=4).only(["el-b1-1", "wm-b2-main"]), 0.5)
    together = readings_of(demo_estate(seed=4), 0.5)
    for device_id in ("el-b1-1", "wm-b2-main"):
        assert [r.metrics for r in alone[device_id]] == [r.metrics for r in together[device_id]]


def test_a_day_of_the_whole_estate_passes_the_ingest_schema() -> None:
    site = demo_estate(seed=2)
    by_device = readings_of(site, 1)
    assert set(by_device) == set(site.devices)
    assert {site.devices[d].model.family for d in by_device} == set(Family)
    assert_schema_valid(site, by_device)


def test_every_device_reports_on_its_interval_with_a_rising_seq() -> None:
    by_device = readings_of(demo_estate(seed=1), 1)
    for device_id, readings in by_device.items():
        assert [r.seq for r in readings] == list(range(1, len(readings) + 1)), device_id
    assert len(by_device["em-b1-main"]) == 24 * 4 + 1  # meters: every 15 min (core.schema)
    assert len(by_device["el-b1-1"]) >= 24 * 120  # lifts: every 30 s


def test_meters_follow_the_day_and_their_registers_only_grow() -> None:
    meters = ("em-b1-main", "em-b2-main", "wm-b2-main", "gm-b2-canteen", "hm-b2-main")
    by_device = readings_of(demo_estate(seed=5).only(meters), 7)
    for device_id in meters:
        register = "energy_kwh" if device_id.startswith("em") else "volume_m3"
        values = [r.metrics[register] for r in by_device[device_id]]
        assert values == sorted(values), device_id

    water = by_device["wm-b2-main"]  # residential: morning and evening peaks, quiet nights
    night = [r.metrics["flow_m3h"] for r in water if 2 <= local_hour(r) < 5]
    evening = [r.metrics["flow_m3h"] for r in water if 19 <= local_hour(r) < 22]
    assert statistics.mean(evening) > 10 * statistics.mean(night)
    assert any(v == 0 for v in night), "without a leak, some night-time intervals draw nothing"

    office = by_device["em-b1-main"]  # office: busy on workdays, quiet at weekends
    weekday_noon = [r.metrics["power_kw"] for r in office if r.ts.astimezone(CHINA_TZ).weekday() < 5
                    and 10 <= local_hour(r) < 16]
    weekend_noon = [r.metrics["power_kw"] for r in office if r.ts.astimezone(CHINA_TZ).weekday() >= 5
                    and 10 <= local_hour(r) < 16]
    assert statistics.mean(weekday_noon) > 3 * statistics.mean(weekend_noon)

    heat = by_device["hm-b2-main"]  # March 2-9: still in the heating season
    assert all(r.metrics["supply_temp_c"] > r.metrics["return_temp_c"] for r in heat)


def test_lifts_run_more_in_the_peaks_and_count_runs_and_door_cycles() -> None:
    lift = readings_of(demo_estate(seed=6).only(["el-b2-1"]), 1)["el-b2-1"]
    runs = [r.metrics["run_count"] for r in lift]
    doors = [r.metrics["door_cycles"] for r in lift]
    assert runs == sorted(runs) and doors == sorted(doors)
    per_hour: Counter[int] = Counter()
    for before, after in itertools.pairwise(lift):
        per_hour[local_hour(after)] += int(after.metrics["run_count"]) - int(before.metrics["run_count"])
    morning_peak = sum(per_hour[h] for h in (7, 8))
    small_hours = sum(per_hour[h] for h in (2, 3))
    assert morning_peak > 5 * max(small_hours, 1)
    assert doors[-1] - doors[0] >= runs[-1] - runs[0]  # every trip opens the doors at least once
    moving = [r for r in lift if r.metrics["running"]]
    assert moving and all(r.metrics["door"] == "closed" and r.metrics["speed_ms"] > 0 for r in moving)
    floors = {r.metrics["floor"] for r in lift}
    assert len(floors) > 10 and 0 not in floors


def test_fire_panels_are_quiet_but_for_occasional_faults() -> None:
    panel = readings_of(demo_estate(seed=3).only(["fp-b1"]), 60)["fp-b1"]
    events = Counter(e["code"] for r in panel for e in r.events)
    assert 3 <= events["point_fault"] <= 40  # about 0.25 a day
    assert events["point_clear"] >= events["point_fault"] - 1  # faults clear after hours
    assert events["point_fire"] <= 4  # rare false alarms (about one in 60 days)...
    assert events["reset"] >= events["point_fire"]  # ...each reset by the duty operator
    assert events["point_start"] == 0  # never a linkage without a real fire
    assert sum(r.metrics["fire"] is True for r in panel) <= 8


def test_gas_detectors_read_near_zero_with_noise_and_slow_drift() -> None:
    by_device = readings_of(demo_estate(seed=8).only(["gd-b2-canteen", "gd-b1-garage"]), 14)
    for device_id, readings in by_device.items():
        lel = [r.metrics["lel_pct"] for r in readings]
        assert max(lel) < 5, device_id
        assert statistics.pstdev(lel) > 0.05, device_id
    garage_co = by_device["gd-b1-garage"]
    rush = [r.metrics["co_ppm"] for r in garage_co if local_hour(r) == 8 and r.ts.astimezone(CHINA_TZ).weekday() < 5]
    night = [r.metrics["co_ppm"] for r in garage_co if local_hour(r) == 3]
    assert statistics.mean(rush) > 3 * statistics.mean(night)


def test_indoor_co2_follows_occupancy_and_outdoor_noise_day_and_night() -> None:
    by_device = readings_of(demo_estate(seed=9).only(["env-b1-f2-office", MEETING_ROOM, "env-outdoor"]), 3)
    office = by_device["env-b1-f2-office"]
    afternoon = [r.metrics["co2_ppm"] for r in office if local_hour(r) in (14, 15)]
    night = [r.metrics["co2_ppm"] for r in office if local_hour(r) in (2, 3)]
    assert statistics.mean(afternoon) > statistics.mean(night) + 150
    assert all(r.metrics["co2_ppm"] > 1000 for r in by_device[MEETING_ROOM])  # the demo's alarm room
    outdoor = by_device["env-outdoor"]
    day = [r.metrics["noise_dba"] for r in outdoor if 9 <= local_hour(r) < 18]
    late = [r.metrics["noise_dba"] for r in outdoor if local_hour(r) in (1, 2, 3)]
    assert statistics.mean(day) > statistics.mean(late) + 6
    assert "tvoc_mgm3" not in outdoor[0].metrics


def test_pumps_keep_their_duty_cycles() -> None:
    by_device = readings_of(demo_estate(seed=10).only(["pump-sump-1", "pump-fire-1", "pump-supply-1"]), 2)
    sump = by_device["pump-sump-1"]
    duty = sum(r.metrics["running"] is True for r in sump) / len(sump)
    assert 0.02 < duty < 0.07  # 5 minutes in every 2 hours
    fire_runs = [r for r in by_device["pump-fire-1"] if r.metrics["running"]]
    assert fire_runs, "the weekly test run"
    assert all(r.ts.astimezone(CHINA_TZ).weekday() == 0 and local_hour(r) == 10 for r in fire_runs)
    running = [r for r in by_device["pump-supply-1"] if r.metrics["running"]]
    stopped = [r for r in by_device["pump-supply-1"] if not r.metrics["running"]]
    assert min(r.metrics["motor_current_a"] for r in running) > 20
    assert all(r.metrics["motor_current_a"] == 0 and r.metrics["flow_m3h"] == 0 for r in stopped)
    assert max(r.metrics["vibration_mm_s"] for r in running) < 2.8  # ISO 10816 zone A/B when healthy
    hours = [r.metrics["run_hours"] for r in by_device["pump-supply-1"]]
    assert hours == sorted(hours)


@pytest.mark.parametrize("interval", [5.0, 60.0])
def test_an_interval_override_applies_to_every_device(interval: float) -> None:
    site = demo_estate(seed=1, interval_s=interval)
    by_device = readings_of(site, 10 * interval / 86400)
    assert all(len(readings) >= 11 for readings in by_device.values())
