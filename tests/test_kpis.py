"""Alarm-load KPIs on recorded histories with known answers: pure functions, the database, the route."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alarms.kpis import Activation, KpiWindow, alarm_kpis, densest, flooded_intervals, report
from alarms.lifecycle import InvalidRequest
from core.clock import FakeClock
from storage.state.database import StateDatabase
from storage.state.models import Alarm, AuditEntry
from tests.test_incidents import api_app, login
from tests.test_inhibit import Plant

H0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
NOW = H0 + timedelta(days=2)
FIRE, CO2, GAS, PUMP = (("fire.alarm_unconfirmed", "s1/fire_panel/fp-1"), ("env.co2_high", "s1/env/room-1"),
                        ("gas.lel_l1", "s1/gas/gd-1"), ("pump.trip", "s1/pump/p-1"))


def at(minutes: float) -> datetime:
    return H0 + timedelta(minutes=minutes)


def acts(key: tuple[str, str], minutes: list[float], grade: int = 3) -> list[Activation]:
    return [Activation(at(m), key[0], key[1], grade) for m in minutes]


# 12 fire activations 20 s apart from 00:01 (a flood and chattering), 5 CO2 10 minutes apart,
# 3 gas exactly 30 s apart (60 s from first to third: not chattering), one pump trip at 01:59:59.
HISTORY = (acts(FIRE, [1 + k / 3 for k in range(12)], grade=2) + acts(CO2, [15, 25, 35, 45, 55], grade=4)
           + acts(GAS, [90, 90.5, 91]) + acts(PUMP, [119 + 59 / 60]))
TWO_HOURS = KpiWindow(H0, at(120))


def test_rates_flood_contributors_and_chattering_on_a_known_history() -> None:
    kpis = report(HISTORY, 0, [], TWO_HOURS)
    assert kpis["activations"] == 21
    assert kpis["per_position"] == {"per_10min": {"average": 1.75, "peak": 12.0},
                                    "per_hour": {"average": 10.5, "peak": 17.0}, "per_day": {"average": 252.0}}
    assert kpis["peak_10min_count"] == 12
    assert kpis["flood"] == {"threshold_per_position": 10, "ends_below_per_position": 5, "intervals": 12,
                             "flood_intervals": 1, "floods": 1, "percent_time": 8.333}
    assert [(c["rule_id"], c["count"], c["share_percent"]) for c in kpis["top_contributors"]] == [
        ("fire.alarm_unconfirmed", 12, 57.143), ("env.co2_high", 5, 23.81), ("gas.lel_l1", 3, 14.286),
        ("pump.trip", 1, 4.762)]
    assert kpis["top10_share_percent"] == 100.0
    assert kpis["chattering"] == [{"rule_id": FIRE[0], "source": FIRE[1], "max_in_1min": 3, "activations": 12,
                                   "first_at": "2026-03-01T00:01:00Z"}]
    assert kpis["by_grade"]["2"] == {"count": 12, "percent": 57.143}
    assert kpis["assessment"]["eemua_191"] == {"steady_state": "manageable", "peak_10min": "difficult"}
    isa = kpis["assessment"]["isa_18_2"]
    assert (isa["alarms_per_hour"], isa["chattering"]) == ({"value": 10.5, "within_target": False},
                                                          {"value": 1, "within_target": False})
    assert kpis["benchmarks"]["isa_18_2"]["alarms_per_10min"] == {"target": 1, "maximum_manageable": 2}


def test_positions_share_the_load() -> None:
    kpis = report(HISTORY, 0, [], KpiWindow(H0, at(120), positions=2))
    assert kpis["per_position"]["per_10min"] == {"average": 0.875, "peak": 6.0}
    assert kpis["flood"]["flood_intervals"] == 0  # 12 in 10 min over two positions is 6 each
    assert kpis["peak_10min_count"] == 12


def test_a_short_last_interval_weighs_by_its_length() -> None:
    burst = acts(CO2, [20 + k / 4 for k in range(11)])  # 11 in 00:20-00:25, the last 5 minutes
    kpis = report(burst, 0, [], KpiWindow(H0, at(25)))
    assert (kpis["flood"]["intervals"], kpis["flood"]["flood_intervals"], kpis["flood"]["percent_time"]) == (3, 1, 20.0)
    assert kpis["per_position"]["per_10min"]["average"] == 4.4  # 11 / 2.5 intervals


def test_the_peak_10_minutes_slide_across_interval_edges() -> None:
    # 8 activations in 00:08-00:09:45 and 8 in 00:10-00:11:45: 8 per fixed interval, 16 within 10 minutes
    burst = acts(CO2, [8 + k / 4 for k in range(8)]) + acts(GAS, [10 + k / 4 for k in range(8)])
    kpis = report(burst, 0, [], TWO_HOURS)
    assert kpis["peak_10min_count"] == 16
    assert kpis["per_position"]["per_10min"]["peak"] == 16.0
    assert kpis["assessment"]["isa_18_2"]["max_alarms_in_10min"] == {"value": 16.0, "within_target": False}
    assert kpis["flood"]["flood_intervals"] == 0  # flood is judged per interval: neither has more than 10
    edge = acts(CO2, [9 + 59 / 60]) + acts(GAS, [19 + 59 / 60])  # 00:09:59 and 00:19:59: exactly 10 min apart
    assert report(edge, 0, [], TWO_HOURS)["peak_10min_count"] == 1


@pytest.mark.parametrize(("per_interval", "flooded", "floods"), [
    ([12, 7, 6, 4, 11, 3], [0, 1, 2, 4], 2),  # 5-10 keeps a flood going; below 5 ends it
    ([11, 5, 10, 5, 2, 10], [0, 1, 2, 3], 1),  # 10 alone never starts one
    ([4, 10, 10, 9], [], 0),
    ([11, 11, 4, 11], [0, 1, 3], 2),
])
def test_flood_starts_above_10_and_ends_below_5(per_interval: list[int], flooded: list[int], floods: int) -> None:
    history = [a for i, n in enumerate(per_interval) for a in acts(CO2, [10 * i + k * 10 / (n + 1) for k in range(n)])]
    kpis = report(history, 0, [], KpiWindow(H0, at(10 * len(per_interval))))
    assert flooded_intervals(per_interval, 1) == flooded
    assert (kpis["flood"]["flood_intervals"], kpis["flood"]["floods"]) == (len(flooded), floods)
    assert kpis["flood"]["percent_time"] == round(100 * len(flooded) / len(per_interval), 3)


def test_only_the_top_10_of_12_contributors_are_listed() -> None:
    # source k activates k + 1 times (1..12, 78 in all); ties would go by rule and source
    rooms = [("env.co2_high", f"s1/env/room-{k:02}") for k in range(12)]
    history = [a for k, room in enumerate(rooms) for a in acts(room, [k + j / 60 for j in range(k + 1)])]
    kpis = report(history, 0, [], TWO_HOURS)
    assert [(c["source"], c["count"]) for c in kpis["top_contributors"]] == [
        (f"s1/env/room-{k:02}", k + 1) for k in range(11, 1, -1)]
    assert kpis["top_contributors"][0]["share_percent"] == round(100 * 12 / 78, 3)
    assert kpis["top10_share_percent"] == round(100 * (78 - 1 - 2) / 78, 3)  # rooms 00 and 01 left out


def test_chattering_means_three_within_less_than_a_minute() -> None:
    t = at(0)
    assert densest([t, t + timedelta(seconds=29), t + timedelta(seconds=59)], timedelta(minutes=1)) == (3, t)
    assert densest([t, t + timedelta(seconds=30), t + timedelta(seconds=60)], timedelta(minutes=1))[0] == 2
    assert densest([], timedelta(minutes=1)) == (0, None)


def test_an_empty_period() -> None:
    kpis = report([], 0, [], TWO_HOURS)
    assert (kpis["activations"], kpis["peak_10min_count"], kpis["top_contributors"]) == (0, 0, [])
    assert kpis["assessment"]["eemua_191"]["steady_state"] == "acceptable"


@pytest.mark.parametrize(("start", "end", "positions", "names"), [
    (at(60), at(0), 1, "from"), (at(0), at(0), 1, "from"), (at(0) - timedelta(days=91), at(0), 1, "90"),
    (datetime(2026, 3, 1), at(60), 1, "from"), (at(0), NOW + timedelta(seconds=1), 1, "to"),
    (at(0), at(60), 0, "positions"),
])
def test_bad_windows_name_the_parameter(start: datetime, end: datetime, positions: int, names: str) -> None:
    with pytest.raises(InvalidRequest, match=names):
        KpiWindow.checked(start, end, NOW, positions)


def test_window_defaults_to_the_last_day() -> None:
    window = KpiWindow.checked(None, None, NOW)
    assert (window.start, window.end, window.positions) == (NOW - timedelta(days=1), NOW, 1)


# --- from the database ----------------------------------------------------------------------------

def row(rule_source: tuple[str, str], raised: datetime, *, site: str = "s1", state: str = "unack",
        cleared: datetime | None = None, suppressed_by: str | None = None) -> Alarm:
    family, device = rule_source[1].split("/")[1:]
    return Alarm(rule_id=rule_source[0], source=rule_source[1], site=site, family=family, device_id=device,
                 category="test", grade=3, state=state, message_zh="", message_en="", raised_at=raised,
                 updated_at=raised, cleared_at=cleared, condition_active=cleared is None, suppressed_by=suppressed_by)


def audit(alarm: Alarm, action: str, when: datetime, **detail: Any) -> AuditEntry:
    return AuditEntry(at=when, actor="system", action=action, entity_type="alarm", entity_id=str(alarm.id),
                      detail=detail)


def record_history(db: StateDatabase) -> dict[str, Alarm]:
    """One hour 00:00-01:00 of 1 March and the alarms around it."""
    with db.session() as session:
        alarms = {
            "fire": row(FIRE, at(5)), "co2": row(CO2, at(12), state="normal", cleared=at(13)),
            "hidden": row(PUMP, at(20), suppressed_by="alarm:1"),
            "other_site": row(("gas.lel_l1", "s2/gas/gd-9"), at(30), site="s2"),
            "before": row(GAS, at(-5), state="normal", cleared=at(-4)), "after": row(GAS, at(61)),
            "stale": row(("env.co2_high", "s1/env/room-2"), at(60) - timedelta(hours=25)),
            "stale_hidden": row(("pump.trip", "s1/pump/p-2"), at(60) - timedelta(hours=30), suppressed_by="alarm:1"),
            "stale_then": row(GAS, at(60) - timedelta(hours=48), state="normal", cleared=at(90)),
            "not_stale": row(GAS, at(60) - timedelta(hours=30), state="normal", cleared=at(30)),
        }
        session.add_all(alarms.values())
        session.flush()
        session.add_all([
            audit(alarms["hidden"], "alarm.suppressed", at(20), activation="raise"),
            audit(alarms["fire"], "alarm.repeated", at(5.25)), audit(alarms["fire"], "alarm.repeated", at(5.5)),
            audit(alarms["fire"], "alarm.repeated", at(5.75)),
            audit(alarms["fire"], "alarm.suppressed", at(5.75), activation="repeat"),
            audit(alarms["fire"], "alarm.suppressed", at(7), activation=None),  # adopted: was annunciated
            audit(alarms["other_site"], "alarm.repeated", at(31)),
        ])
    return alarms


def test_kpis_from_the_alarm_rows_and_the_audit_log(state_db: StateDatabase) -> None:
    alarms = record_history(state_db)
    with state_db.session() as session:
        kpis = alarm_kpis(session, KpiWindow(H0, at(60), site="s1"))
        everywhere = alarm_kpis(session, KpiWindow(H0, at(60)))
    assert (kpis["activations"], kpis["suppressed"]) == (4, 2)  # fire, 2 of its repeats, co2; pump hidden
    assert [(c["rule_id"], c["count"]) for c in kpis["top_contributors"]] == [(FIRE[0], 3), (CO2[0], 1)]
    assert kpis["chattering"] == [{"rule_id": FIRE[0], "source": FIRE[1], "max_in_1min": 3, "activations": 3,
                                   "first_at": "2026-03-01T00:05:00Z"}]
    assert kpis["per_position"]["per_hour"] == {"average": 4.0, "peak": 4.0}
    stale = kpis["stale"]
    assert (stale["count"], stale["suppressed"]) == (2, 1)
    assert [(s["id"], s["hours_active"], s["suppressed"]) for s in stale["items"]] == [
        (alarms["stale_then"].id, 48.0, False), (alarms["stale_hidden"].id, 30.0, True),
        (alarms["stale"].id, 25.0, False)]
    assert everywhere["activations"] == 6  # the other site's alarm and its repeat


def test_kpis_count_a_gateway_flood_once(tmp_path: Path) -> None:
    """Through the real pipeline: the gateway's devices are suppressed, so only the gateway counts."""
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    plant = Plant(db)
    plant.gateway("gw-b2", online=False)
    plant.at(10)
    for device_id in ("el-b2-1", "el-b2-2", "pump-b2-1"):
        plant.device(device_id, online=False)
    plant.at(125)  # the gateway's on-delay ends first
    plant.at(600)
    with db.session() as session:
        kpis = alarm_kpis(session, KpiWindow.checked(None, None, plant.clock.now()))
    db.dispose()
    assert (kpis["activations"], kpis["suppressed"]) == (1, 3)
    assert [c["rule_id"] for c in kpis["top_contributors"]] == ["comms.gateway_offline"]


# --- the route ------------------------------------------------------------------------------------

@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    record_history(db)
    with TestClient(api_app(db, FakeClock(NOW))) as test_client:
        yield test_client
    db.dispose()


def test_kpi_route(client: TestClient) -> None:
    headers = login(client, "viewer")
    body = client.get("/api/v1/kpis/alarms?from=2026-03-01T00:00:00Z&to=2026-03-01T01:00:00Z&site=s1&positions=2",
                      headers=headers)
    assert body.status_code == 200, body.text
    kpis = body.json()
    assert kpis["window"] == {"from": "2026-03-01T00:00:00Z", "to": "2026-03-01T01:00:00Z", "hours": 1.0,
                              "positions": 2, "site": "s1"}
    assert (kpis["activations"], kpis["per_position"]["per_hour"]["average"]) == (4, 2.0)
    assert client.get("/api/v1/kpis/alarms", headers=headers).json()["window"]["to"] == "2026-03-03T00:00:00Z"


@pytest.mark.parametrize(("query", "named"), [
    ("from=2026-03-01T02:00:00Z&to=2026-03-01T01:00:00Z", "from"),
    ("from=2025-11-01T00:00:00Z&to=2026-03-01T01:00:00Z", "90 days"),
    ("from=2026-03-01T00:00:00&to=2026-03-01T01:00:00Z", "from"),
    ("to=2026-03-04T00:00:00Z", "to"),
    ("from=yesterday", "from"),
    ("positions=0", "positions"),
    ("site=no%20spaces", "site"),
])
def test_bad_kpi_queries_are_422_naming_the_parameter(client: TestClient, query: str, named: str) -> None:
    response = client.get(f"/api/v1/kpis/alarms?{query}", headers=login(client, "viewer"))
    assert response.status_code == 422, response.text
    assert named in str(response.json()["detail"])
