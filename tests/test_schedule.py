"""The maintenance scheduler: capacity, skills, blackout windows, ordering, unschedulable jobs with
reasons (pure, lists in and out), the inputs read from the database, and the CLI and API."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api.app import create_app
from api.security import hash_password
from core.clock import FakeClock
from core.domain import Role
from core.settings import load_settings
from maintenance import plans, workorders
from maintenance.risks import record_risks
from maintenance.schedule import (
    DEFAULT_BLACKOUTS,
    Blackout,
    Booking,
    Crew,
    Job,
    Options,
    Schedule,
    build_schedule,
    parse_blackout,
)
from maintenance.schedule_inputs import load
from runtime.api_process import build_services
from runtime.maintenance_cli import maintenance
from storage.state.database import StateDatabase
from tests.equipment_support import T0, seed

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=TZ)  # a Monday, before anyone's shift
DAY0 = NOW.date()
PLUMBER = Crew("plumber", frozenset({"plumbing"}), 240, time(8, 30), time(17, 30))
LIFT = Crew("lift", frozenset({"elevator"}), 480, time(7, 0), time(19, 0))


def job(key: str, *, skill: str = "plumbing", minutes: int = 60, kind: str = "planned", equipment: str | None = None,
        equipment_type: str = "pump", **fields: Any) -> Job:
    return Job(key, kind, equipment or f"EQ-{key}", equipment_type, f"任务{key}", f"task {key}", skill, minutes,
               basis_en=f"because {key}", basis_zh=f"原因{key}", **fields)


def run(jobs: list[Job], crews: list[Crew], days: int = 7, now: datetime = NOW, **options: Any) -> Schedule:
    return build_schedule(jobs, crews, now, Options(days=days, tz=TZ, **options))


def placed(schedule: Schedule) -> dict[str, Booking]:
    return {b.job.key: b for b in schedule.bookings}


def local_minutes(b: Booking) -> tuple[int, int]:
    start, end = b.start.astimezone(TZ), b.end.astimezone(TZ)
    return start.hour * 60 + start.minute, end.hour * 60 + end.minute


# --- constraints ---------------------------------------------------------------------------------


def test_capacity_is_never_exceeded_and_nobody_is_in_two_places() -> None:
    crews = [PLUMBER, Crew("plumber2", frozenset({"plumbing"}), 150, time(8, 30), time(17, 30))]
    jobs = [job(f"j{i:02d}", minutes=m) for i, m in enumerate([45, 90, 30, 120, 60, 75, 30, 45, 90, 60] * 3)]
    schedule = run(jobs, crews, days=3)
    load: dict[tuple[str, date], list[Booking]] = defaultdict(list)
    for b in schedule.bookings:
        load[(b.technician, b.day)].append(b)
    capacity = {c.id: c.capacity_min for c in crews}
    for (tech, _day), booked in load.items():
        assert sum(b.job.duration_min for b in booked) <= capacity[tech]
        spans = sorted(local_minutes(b) for b in booked)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
        assert all(s >= 8 * 60 + 30 and e <= 17 * 60 + 30 for s, e in spans)
    assert len(schedule.bookings) + len(schedule.unscheduled) == len(jobs)
    assert schedule.unscheduled, "more work than 3 days of capacity: some must be left over"
    assert all("free minutes by 2026-11-25" in u.reason_en for u in schedule.unscheduled)
    assert all("无" in u.reason_zh and "分钟空闲" in u.reason_zh for u in schedule.unscheduled)


def test_skills_are_respected_and_a_missing_skill_is_reported() -> None:
    jobs = [job("pipe"), job("lift", skill="elevator", equipment_type="elevator"), job("hvac", skill="hvac")]
    schedule = run(jobs, [PLUMBER, LIFT])
    booked = placed(schedule)
    assert (booked["pipe"].technician, booked["lift"].technician) == ("plumber", "lift")
    [missing] = schedule.unscheduled
    assert missing.job.key == "hvac"
    assert missing.reason_en == "no active technician has the skill HVAC"
    assert missing.reason_zh == "无具备“暖通空调”技能的在岗技术员"


def test_no_elevator_work_in_the_rush_hour_blackouts() -> None:
    lift_jobs = [job(f"lift{i}", skill="elevator", equipment_type="elevator", minutes=90, equipment=f"DT-{i % 3}")
                 for i in range(9)]
    pump_early = job("pump", skill="elevator", equipment_type="pump", minutes=60)  # not an elevator: no blackout
    schedule = run([*lift_jobs, pump_early], [LIFT], days=3)
    for b in schedule.bookings:
        start, end = local_minutes(b)
        if b.job.equipment_type == "elevator":
            assert end <= 7 * 60 or start >= 9 * 60, b
            assert end <= 17 * 60 or start >= 19 * 60, b
            assert "07:00–09:00, 17:00–19:00" in b.reason_en and "避开高峰时段" in b.reason_zh
    assert local_minutes(placed(schedule)["pump"]) == (7 * 60, 8 * 60)  # the rush hour is free for other work
    unrestricted = run(lift_jobs[:1], [LIFT], blackouts=())
    assert local_minutes(unrestricted.bookings[0]) == (7 * 60, 8 * 60 + 30)


def test_a_job_that_blackouts_leave_no_room_for_is_unschedulable_with_the_reason() -> None:
    lifts = frozenset({"elevator"})
    tight = [Blackout(lifts, time(10), time(11)), Blackout(lifts, time(14), time(15))]
    crew = Crew("lift", frozenset({"elevator"}), 480, time(8, 30), time(17, 30))
    long_job = job("overhaul", skill="elevator", equipment_type="elevator", minutes=200)
    [unplaced] = run([long_job], [crew], blackouts=tight).unscheduled
    assert "blackout windows leave at most 180 min" in unplaced.reason_en
    assert "禁止作业时段" in unplaced.reason_zh
    not_sensitive = job("records", skill="elevator", equipment_type="elevator", minutes=200, blackout_sensitive=False)
    assert len(run([not_sensitive], [crew], blackouts=tight).bookings) == 1


def test_a_job_longer_than_any_day_is_reported() -> None:
    [unplaced] = run([job("rebuild", minutes=300)], [PLUMBER]).unscheduled
    assert unplaced.reason_en == "needs 300 min in one day, more than any plumbing technician's day (240 min)"


def test_one_job_at_a_time_on_a_piece_of_equipment() -> None:
    crews = [PLUMBER, Crew("plumber2", frozenset({"plumbing"}), 240, time(8, 30), time(17, 30))]
    same = [job("a", equipment="P-1"), job("b", equipment="P-1")]
    a, b = (placed(run(same, crews))[k] for k in "ab")
    assert a.end <= b.start or b.end <= a.start
    assert a.technician != b.technician  # two technicians, but one after the other on the pump


# --- ordering ------------------------------------------------------------------------------------


def test_ordered_by_risk_then_due_date() -> None:
    one_a_day = [Crew("p", frozenset({"plumbing"}), 60, time(8, 30), time(17, 30))]
    jobs = [job("late_due", due=DAY0 + timedelta(days=5)), job("risky", risk=0.7, due=DAY0 + timedelta(days=6)),
            job("soon_due", due=DAY0 + timedelta(days=1)), job("no_due")]
    order = [b.job.key for b in sorted(run(jobs, one_a_day).bookings, key=lambda b: b.start)]
    assert order == ["risky", "soon_due", "late_due", "no_due"]


def test_priority_and_work_in_progress_come_first() -> None:
    one_a_day = [Crew("p", frozenset({"plumbing"}), 60, time(8, 30), time(17, 30))]
    jobs = [job("risky", risk=0.95), job("urgent", priority="urgent"), job("started", priority="low", in_progress=True)]
    order = [b.job.key for b in sorted(run(jobs, one_a_day).bookings, key=lambda b: b.start)]
    assert order == ["started", "urgent", "risky"]


def test_late_jobs_are_placed_and_marked() -> None:
    one_a_day = [Crew("p", frozenset({"plumbing"}), 60, time(8, 30), time(17, 30))]
    jobs = [job("first", risk=0.9), job("second", due=DAY0)]
    late = placed(run(jobs, one_a_day))["second"]
    assert (late.day, late.late) == (DAY0 + timedelta(days=1), True)
    assert late.reason_en == "because second; late: was due 2026-11-23"
    assert late.reason_zh == "原因second;已逾期(应于 2026-11-23 前完成)"


def test_earliest_day_now_and_the_assignee_are_respected() -> None:
    crews = [PLUMBER, Crew("other", frozenset({"plumbing"}), 240, time(8, 30), time(17, 30))]
    later = job("later", earliest=DAY0 + timedelta(days=2))
    mine = job("mine", assignee="other")
    booked = placed(run([later, mine], crews))
    assert booked["later"].day == DAY0 + timedelta(days=2)
    assert booked["mine"].technician == "other"
    afternoon = datetime(2026, 11, 23, 14, 7, tzinfo=TZ)
    b = run([job("now")], [PLUMBER], now=afternoon).bookings[0]
    assert b.start == datetime(2026, 11, 23, 14, 15, tzinfo=TZ)  # not in the past; rounded to 15 min
    too_late = datetime(2026, 11, 23, 17, 0, tzinfo=TZ)
    assert run([job("x")], [PLUMBER], now=too_late).bookings[0].day == DAY0 + timedelta(days=1)


def test_parse_blackout() -> None:
    [morning, evening] = parse_blackout("elevator,escalator=07:00-09:00,17:00-19:00")
    assert (morning, evening) == DEFAULT_BLACKOUTS
    for bad in ("elevator", "=07:00-09:00", "elevator=7am-9am", "elevator=09:00-07:00", "elevator=07:00"):
        with pytest.raises(ValueError, match="blackout"):
            parse_blackout(bad)


def test_json_shape() -> None:
    body = run([job("a"), job("b", skill="hvac")], [PLUMBER], days=2).as_json()
    assert (body["first_day"], body["last_day"], body["timezone"]) == ("2026-11-23", "2026-11-24", "Asia/Shanghai")
    assert [d["date"] for d in body["days"]] == ["2026-11-23", "2026-11-24"]
    [item] = body["days"][0]["items"]
    assert (item["key"], item["technician"], item["start"]) == ("a", "plumber", "2026-11-23T08:30:00+08:00")
    assert body["unscheduled"][0]["reason_zh"].startswith("无具备")


# --- inputs from the database, CLI and API -------------------------------------------------------


class _Risk:
    def __init__(self, asset_id: str, probability: float) -> None:
        self.asset_id, self.horizon_days, self.probability = asset_id, 30, probability
        self.top_features: tuple[tuple[str, float], ...] = (("vibration_mm_s", 0.4),)
        self.model_version = "test"


def test_inputs_merge_plan_tasks_risks_and_open_orders(state_db: StateDatabase) -> None:
    seed(state_db)
    with state_db.session() as session:
        record_risks(session, [_Risk("GPS-SB-101", 0.8), _Risk("GPS-SB-201", 0.2), _Risk("NT-B1-301", 0.9)], T0)
        corrective = workorders.create(session, workorders.NewWorkOrder("NT-B1-301", title="fan noise"), "op", T0)
        inputs = load(session, T0, days=14, threshold=0.5)
    keys = [j.key for j in inputs.jobs]
    assert f"wo:{corrective.id}" in keys
    predictive = [j for j in inputs.jobs if j.kind == "predictive"]
    assert [j.equipment_id for j in predictive] == ["GPS-SB-101"]  # 0.2 is below; the fan has a work order
    assert predictive[0].priority == "high" and "80%" in predictive[0].basis_en and "vibration_mm_s" in \
        predictive[0].basis_en
    half_monthly = [j for j in inputs.jobs if j.equipment_id == "DT-B1-001" and "half-monthly" in j.title_en]
    assert [(j.key.startswith("plan:"), j.due, j.earliest) for j in half_monthly] == [
        (True, date(2026, 11, 30), date(2026, 11, 16))]
    pump = [j for j in inputs.jobs if j.equipment_id == "GPS-SB-101" and j.kind == "planned"]
    assert pump and all(j.risk == 0.8 for j in pump)  # the risk orders the pump's planned work too
    with state_db.session() as session:
        created = plans.generate(session, T0, 14).created
        after = load(session, T0, days=14)
    generated = {f"wo:{i}" for i in created}
    assert generated <= {j.key for j in after.jobs}
    assert not [j for j in after.jobs if j.key.startswith("plan:")]  # each period once: as its work order
    assert {c.id for c in after.crews} == {"lift.a", "plumber", "fire.eng"}


def test_cli_and_api_schedule(state_db: StateDatabase, tmp_path: Path) -> None:
    seed(state_db)
    services = build_services(load_settings(environment="demo"), state_db, FakeClock(T0))
    services.users.add("viewer", hash_password("schedule-pw"), Role.VIEWER, T0)
    with TestClient(create_app(services)) as client:
        token = client.post("/api/v1/auth/token", data={"username": "viewer", "password": "schedule-pw"})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        body = client.get("/api/v1/maintenance/schedule?days=14", headers=headers).json()
        items = [i for d in body["days"] for i in d["items"]]
        assert body["first_day"] == "2026-11-21" and len(body["days"]) == 14
        assert items and all(i["reason_en"] and i["reason_zh"] for i in items)
        lifts = [i for i in items if i["equipment_type"] == "elevator"]
        assert lifts and all(not ("07:00" <= i["start"][11:16] < "09:00") for i in lifts)
        hvac = [i for i in body["unscheduled"] if i["skill"] == "hvac"]  # the test roster has no HVAC technician
        assert hvac and all(i["reason_en"] == "no active technician has the skill HVAC" for i in hvac)
        open_all_day = client.get("/api/v1/maintenance/schedule?days=14&no_blackout=true", headers=headers).json()
        assert open_all_day["blackouts"] == []
        for query in ("days=0", "threshold=2", "blackout=elevator=7-9"):
            bad = client.get(f"/api/v1/maintenance/schedule?{query}", headers=headers)
            assert bad.status_code == 422, query
            assert query.split("=")[0] in str(bad.json()["detail"])
        assert client.get("/api/v1/maintenance/schedule").status_code == 401
    with state_db.session() as session:  # open work orders are scheduled whatever the date: the CLI uses the real clock
        order = workorders.create(session, workorders.NewWorkOrder("GPS-SB-201", title="pump jammed"), "op", T0)
    env = {"FMON_DATABASE_URL": state_db.url, "FMON_ENVIRONMENT": "demo"}
    table = CliRunner().invoke(maintenance, ["schedule", "--days", "3"], env=env)
    assert table.exit_code == 0, table.output
    assert "maintenance schedule" in table.output
    assert f"why: corrective work order #{order.id} (normal) | 报修工单 #{order.id}(优先级普通)" in table.output
    as_json = CliRunner().invoke(maintenance, ["schedule", "--days", "3", "--json"], env=env)
    assert len(json.loads(as_json.output)["days"]) == 3
    bad = CliRunner().invoke(maintenance, ["schedule", "--blackout", "elevator"], env=env)
    assert bad.exit_code == 2 and "--blackout" in bad.output
