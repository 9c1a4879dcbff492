"""Failure prediction: history loading, features without look-ahead, labels and the time split,
the evaluation protocol's arithmetic, baselines, artifacts, scoring, the job planner and the CLI.

All on small histories generated here: a fleet whose assets wear (vibration rises, errors appear)
for a few days before each failure, with periodic maintenance.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import average_precision_score

from core.domain import DeviceRef, Family, Reading
from core.errors import ConfigError
from maintenance.artifact import Artifact, ArtifactError, load, save, sidecar_path
from maintenance.baselines import calendar_scores, error_rule_scores
from maintenance.evaluate import (
    DAY_NS,
    EvalConfig,
    evaluate,
    figures,
    label_rows,
    make_dataset,
    make_folds,
    outcome,
    select_alerts,
    summarize,
)
from maintenance.features import FeatureSpec, build_features, features_on, infer_spec
from maintenance.history import (
    HistoryError,
    error_events_from_alarms,
    events_from_backfill_log,
    load_assets_csv,
    load_events_csv,
    load_telemetry_csv,
    normalize_events,
    normalize_telemetry,
    telemetry_from_store,
)
from maintenance.jobs import DataState, JobPolicy, Runs, days_to_score, plan
from maintenance.models import ModelConfig, average_precision
from maintenance.predict import Risk, score
from maintenance.training import train
from runtime.cli import main
from storage.sqlite_telemetry import SqliteTelemetryStore

T0 = pd.Timestamp("2026-01-01", tz="UTC")
FAST = ModelConfig(max_iter=40, min_samples_leaf=10)


# --- a generated fleet -----------------------------------------------------------------------------


def fleet(assets: int = 8, days: int = 80, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Telemetry every 4 h (vibration, temperature, a run counter) and events of a wearing fleet."""
    rng = np.random.default_rng(seed)
    frames, events = [], []
    for a in range(assets):
        asset = f"pump-{a}"
        ts = T0 + pd.to_timedelta(np.arange(days * 6) * 4, unit="h")
        failures = _failure_times(rng, days)
        wear = np.zeros(len(ts))
        for f in failures:
            before = (f - ts) / pd.Timedelta(days=5)
            ramp = np.clip(1 - np.asarray(before, dtype=float), 0, 1)
            wear = np.maximum(wear, np.where(np.asarray(ts < f), ramp, 0.0))
            events.append((f, asset, "failure", "bearing"))
            events.append((f + pd.Timedelta(hours=8), asset, "maintenance", "repair"))
            for k in range(int(rng.integers(1, 4))):
                events.append((f - pd.Timedelta(hours=int(rng.integers(2, 60))) + pd.Timedelta(minutes=k),
                               asset, "error", "overload"))
        events += [(T0 + pd.Timedelta(days=d, hours=10), asset, "maintenance", "grease")
                   for d in range(int(rng.integers(0, 20)), days, 20)]
        events += [(T0 + pd.Timedelta(hours=float(h)), asset, "error", "comms")
                   for h in rng.uniform(0, days * 24, int(days * 0.1))]
        frames.append(pd.DataFrame({
            "timestamp": ts, "asset_id": asset,
            "vibration_mm_s": 2 + 6 * wear**2 + rng.normal(0, 0.3, len(ts)),
            "temp_c": 40 + 10 * wear + rng.normal(0, 1, len(ts)),
            "run_count": np.cumsum(rng.integers(5, 15, len(ts))).astype(float),
        }))
    telemetry = normalize_telemetry(pd.concat(frames))
    return telemetry, normalize_events(pd.DataFrame(events, columns=["timestamp", "asset_id", "kind", "component"]))


def _failure_times(rng: np.random.Generator, days: int) -> list[pd.Timestamp]:
    out, day = [], float(rng.uniform(8, 25))
    while day < days - 1:
        out.append(T0 + pd.Timedelta(days=day).round("min"))
        day += float(rng.uniform(15, 30))
    return out


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, pd.DataFrame]:
    return fleet()


def write_csvs(tmp_path: Path, telemetry: pd.DataFrame, events: pd.DataFrame) -> tuple[Path, Path]:
    t, e = tmp_path / "telemetry.csv", tmp_path / "events.csv"
    out = telemetry.assign(timestamp=telemetry["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    out.to_csv(t, index=False)
    events.assign(timestamp=events["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(e, index=False)
    return t, e


# --- loading history -------------------------------------------------------------------------------


def test_csv_files_load_into_the_frames(tmp_path: Path, history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    telemetry, events = history
    t, e = write_csvs(tmp_path, telemetry.head(50), events)
    loaded = load_telemetry_csv(t)
    assert list(loaded.columns) == ["timestamp", "asset_id", "vibration_mm_s", "temp_c", "run_count"]
    assert str(loaded["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert np.allclose(loaded["vibration_mm_s"], telemetry.head(50)["vibration_mm_s"])
    got = load_events_csv(e)
    assert sorted(got["kind"].unique()) == ["error", "failure", "maintenance"]
    assert len(got) == len(events)


@pytest.mark.parametrize(("content", "line", "words"), [
    ("timestamp,asset_id,v\n2026-01-01T00:00Z,a,1\n\n2026-13-01T00:00Z,a,2\n", 4, "bad timestamp '2026-13-01"),
    ("timestamp,asset_id,v\n2026-01-01T00:00Z,a,1\n2026-01-01T01:00Z,a,high\n", 3, "v: 'high' is not a finite"),
    ("timestamp,asset_id,v\n2026-01-01T00:00Z,,1\n", 2, "empty asset_id"),
    ("time,asset_id,v\n2026-01-01T00:00Z,a,1\n", 1, "missing column(s) timestamp"),
    ("timestamp,asset_id\n2026-01-01T00:00Z,a\n", 1, "no metric columns"),
])
def test_telemetry_csv_errors_name_the_file_and_line(tmp_path: Path, content: str, line: int, words: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(HistoryError) as info:
        load_telemetry_csv(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}, line {line}: ") and words in str(info.value)


def test_event_csv_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("timestamp,asset_id,kind,component\n2026-01-01T00:00Z,a,failure,c1\n"
                    "2026-01-02T00:00Z,a,breakdown,c1\n")
    with pytest.raises(HistoryError, match=r"line 3: unknown kind 'breakdown'"):
        load_events_csv(path)
    path.write_text("timestamp,asset_id,component\n2026-01-01T00:00Z,a,c1\n")
    with pytest.raises(HistoryError, match=r"line 1: missing column\(s\) kind"):
        load_events_csv(path)
    path.write_text("timestamp,asset_id,kind\n2026-01-01T08:00+08:00,a,Failure\n")
    loaded = load_events_csv(path)  # component is optional; offsets are converted to UTC
    assert loaded.iloc[0]["timestamp"] == pd.Timestamp("2026-01-01T00:00Z") and loaded.iloc[0]["component"] == ""
    with pytest.raises(HistoryError, match="no such file"):
        load_events_csv(tmp_path / "missing.csv")


def test_assets_csv_gives_types_and_installation_dates(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("asset_id,type,installed\np1,pump,2020-05-01\nl1,lift,\n")
    assets = load_assets_csv(path)
    assert list(assets["type"]) == ["pump", "lift"]
    assert assets["installed"].iloc[0] == pd.Timestamp("2020-05-01", tz="UTC") and pd.isna(assets["installed"].iloc[1])
    path.write_text("asset_id,installed\np1,last spring\n")
    with pytest.raises(HistoryError, match="line 2: bad installed date"):
        load_assets_csv(path)


def test_the_store_path_builds_the_same_features_as_the_csv_path(tmp_path: Path) -> None:
    pump = DeviceRef("s1", Family.PUMP, "pump-1")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    readings = [Reading(pump, start + timedelta(hours=h), {"vibration_mm_s": 2.0 + h / 100, "running": h % 2 == 0,
                                                           "motor_current_a": 10.0 + (h % 5)}) for h in range(240)]
    store = SqliteTelemetryStore(tmp_path / "t.db")
    try:
        store.write(readings)
        from_store = telemetry_from_store(store, start, start + timedelta(days=30), devices=[pump])
        assert telemetry_from_store(store, start, start + timedelta(days=30),
                                    devices=[DeviceRef("s1", Family.PUMP, "other")]).empty
    finally:
        store.close()
    assert set(from_store["asset_id"]) == {"s1/pump/pump-1"} and len(from_store) == 240
    assert sorted(from_store["running"].unique()) == [0.0, 1.0]
    rows = [{"timestamp": r.ts.isoformat(), "asset_id": "s1/pump/pump-1",
             "motor_current_a": r.metrics["motor_current_a"], "running": int(bool(r.metrics["running"])),
             "vibration_mm_s": r.metrics["vibration_mm_s"]} for r in readings]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    from_csv = load_telemetry_csv(tmp_path / "t.csv")
    events = normalize_events(pd.DataFrame({"timestamp": [T0], "asset_id": ["s1/pump/pump-1"], "kind": ["error"],
                                            "component": ["x"]}))
    spec = infer_spec(from_csv, events)
    pd.testing.assert_frame_equal(build_features(from_store, events, spec), build_features(from_csv, events, spec))


@dataclass(frozen=True)
class FakeAlarm:
    site: str
    family: str
    device_id: str
    rule_id: str
    raised_at: datetime


def test_backfill_logs_and_alarms_become_events(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("ts,site,family,device_id,kind,detail\n"
                   "2026-01-02T03:00:00+00:00,s1,pump,p1,degradation_start,x\n"
                   "2026-01-05T03:00:00+00:00,s1,pump,p1,failure,bearing\n"
                   "2026-01-06T03:00:00+00:00,s1,pump,p1,repair,ok\n")
    backfill = events_from_backfill_log(log)
    kinds = list(zip(backfill["kind"], backfill["component"], strict=True))
    assert kinds == [("failure", ""), ("maintenance", "repair")]  # wear onsets are not observable
    naive = datetime(2026, 1, 4, 8, 0)  # SQLite hands back naive UTC times
    errors = error_events_from_alarms([FakeAlarm("s1", "pump", "p1", "pump.vibration_high", naive),
                                       FakeAlarm("s1", "pump", "p2", "pump.trip", datetime(2026, 1, 4, tzinfo=UTC))],
                                      asset_of=lambda d: None if d.device_id == "p2" else d.key)
    assert errors.to_dict("records") == [{"timestamp": pd.Timestamp("2026-01-04T08:00Z"), "asset_id": "s1/pump/p1",
                                          "kind": "error", "component": "pump.vibration_high"}]


# --- features --------------------------------------------------------------------------------------


def tiny_history() -> tuple[pd.DataFrame, pd.DataFrame]:
    ts = [T0 + pd.Timedelta(hours=h) for h in (0, 6, 12, 24, 30, 48, 72, 96)]
    telemetry = normalize_telemetry(pd.DataFrame({
        "timestamp": ts, "asset_id": "a", "v": [1.0, 2.0, 3.0, 10.0, 12.0, 5.0, 6.0, 7.0],
        "count": [100.0, 101.0, 103.0, 110.0, 111.0, 120.0, 121.0, 130.0]}))
    events = normalize_events(pd.DataFrame({
        "timestamp": [T0 - pd.Timedelta(days=3), T0 + pd.Timedelta(hours=30), T0 + pd.Timedelta(hours=47),
                      T0 + pd.Timedelta(hours=48)],
        "asset_id": "a", "kind": ["maintenance", "error", "error", "failure"], "component": ["c1", "e1", "e2", "c1"]}))
    return telemetry, events


def test_feature_values_on_a_tiny_history() -> None:
    telemetry, events = tiny_history()
    spec = FeatureSpec(("v", "count"), ("count",), {"error": ("e1",), "maintenance": ("c1",)},
                       windows_days=(1, 3), event_windows_days=(1, 7), trend_days=3)
    x = build_features(telemetry, events, spec).loc["a"]
    day = [T0 + pd.Timedelta(days=d) for d in range(5)]
    assert list(x.index) == day
    assert x.loc[day[0], "v_mean_1d"] == pytest.approx(2.0)
    assert x.loc[day[0], "v_std_1d"] == pytest.approx(1.0)
    assert x.loc[day[1], "v_mean_3d"] == pytest.approx(28 / 5)
    assert (x.loc[day[1], "v_min_3d"], x.loc[day[1], "v_max_3d"]) == (1.0, 12.0)
    assert pd.isna(x.loc[day[1], "v_slope_3d"])  # fewer than three days of data
    assert x.loc[day[2], "v_slope_3d"] == pytest.approx(1.5)  # daily means 2, 11, 5 on days 0, 1, 2
    assert x.loc[day[2], "v_dev_1d_3d"] == pytest.approx(5 - 33 / 6)
    assert x.loc[day[1], "count_delta_1d"] == pytest.approx(111 - 103)
    assert x.loc[day[0], "count_delta_1d"] == pytest.approx(3.0)  # the first day: from the first reading
    assert x.loc[day[3], "count_delta_3d"] == pytest.approx(121 - 103)
    assert (x.loc[day[1], "error_count_1d"], x.loc[day[1], "error:e1_count_1d"]) == (2.0, 1.0)
    assert x.loc[day[2], "error_count_1d"] == 0.0 and x.loc[day[2], "error_count_7d"] == 2.0
    assert x.loc[day[0], "days_since_maintenance:c1"] == pytest.approx(4.0)
    assert x.loc[day[2], "days_since_failure"] == pytest.approx(1.0) and pd.isna(x.loc[day[1], "days_since_failure"])
    assert x.loc[day[2], "failure_count_7d"] == 1.0
    assert pd.isna(x.loc[day[3], "v_std_1d"])  # one reading that day


def test_features_have_no_look_ahead(history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    telemetry, events = history
    spec = infer_spec(telemetry, events)
    before = build_features(telemetry, events, spec)
    cut = T0 + pd.Timedelta(days=40)  # the end of day 39; changes from this instant on
    later = telemetry["timestamp"] >= cut
    changed_t = telemetry.copy()
    changed_t.loc[later, ["vibration_mm_s", "temp_c"]] *= 3.0
    changed_t.loc[later, "run_count"] += 1e6
    extra = pd.DataFrame({"timestamp": [cut, cut + pd.Timedelta(hours=5)], "asset_id": ["pump-0", "pump-1"],
                          "kind": ["failure", "error"], "component": ["bearing", "overload"]})
    changed_e = normalize_events(pd.concat([events[events["timestamp"] < cut + pd.Timedelta(days=3)], extra]))
    after = build_features(changed_t, changed_e, spec)
    days = before.index.get_level_values("day")
    pd.testing.assert_frame_equal(before[days < cut], after[days < cut])
    assert not before[days >= cut].equals(after[days >= cut])  # the change is visible from day 40 on


def test_the_rows_of_one_day_match_those_of_the_whole_history(history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    telemetry, events = history
    spec = infer_spec(telemetry, events)
    day = T0 + pd.Timedelta(days=50)
    whole = build_features(telemetry, events, spec).xs(day, level="day")
    one_day = features_on(telemetry, events, spec, day)  # from the last lookback_days of telemetry only
    pd.testing.assert_frame_equal(one_day, whole, rtol=1e-9)
    assert one_day["run_count_delta_7d"].notna().all()


def test_feature_spec_infers_counters_components_and_round_trips(history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    telemetry, events = history
    spec = infer_spec(telemetry, events)
    assert spec.counters == ("run_count",)
    assert spec.components["error"] == ("comms", "overload") and spec.components["maintenance"] == ("grease", "repair")
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert "run_count_delta_7d" in spec.names() and "run_count_mean_1d" not in spec.names()
    with pytest.raises(ConfigError, match="lacks metric"):
        build_features(telemetry.drop(columns="temp_c"), events, spec)


# --- labels and the time split ---------------------------------------------------------------------


def test_labels_cover_the_horizon_after_the_end_of_the_day() -> None:
    failure = T0 + pd.Timedelta(days=10, hours=6)
    failures = pd.DataFrame({"asset_id": ["a"], "t": [failure.value]})
    ends = np.array([(T0 + pd.Timedelta(days=d)).value for d in range(6, 12)], dtype=np.int64)
    y = label_rows(np.array(["a"] * 6, dtype=object), ends, failures, horizon_days=2)
    # rows end at days 6..11 00:00; the failure at day 10 06:00 is in (end, end + 2 d] for ends at days 9 and 10
    assert list(y) == [0, 0, 0, 1, 1, 0]
    assert list(label_rows(np.array(["b"] * 6, dtype=object), ends, failures, 2)) == [0] * 6


def test_the_purge_gap_keeps_every_training_label_window_before_the_test_block(
        history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    telemetry, events = history
    horizon = 5
    data = make_dataset(telemetry, events, None, infer_spec(telemetry, events), horizon)
    folds = make_folds(data.day, horizon, cutoffs=3, test_fraction=0.5)
    assert len(folds) == 3
    assert all(a.test_end == b.test_start for a, b in itertools.pairwise(folds))
    observed_end = (telemetry["timestamp"].max().floor("D") + pd.Timedelta(days=1)).value
    assert data.end.max() + horizon * DAY_NS <= observed_end  # no row with an unknown label
    for fold in folds:
        train, test = fold.masks(data.day)
        assert train.sum() > 0 and test.sum() > 0 and not (train & test).any()
        test_starts_at = fold.test_start * DAY_NS
        assert (data.end[train] + horizon * DAY_NS).max() <= test_starts_at
        assert data.day[train].max() == fold.test_start - horizon - 1  # and not a day more is purged


# --- the protocol's arithmetic ---------------------------------------------------------------------


@dataclass(frozen=True)
class HandCase:
    asset: npt.NDArray[np.object_]
    day: npt.NDArray[np.int64]
    end: npt.NDArray[np.int64]
    score: npt.NDArray[np.float64]
    failures: pd.DataFrame
    y: npt.NDArray[np.int_]


def hand_case() -> HandCase:
    """4 assets, 10 test days, 1 alert a day (budget 0.25), H = 2 days. A fails at day 4 06:00, B at
    day 8 12:00, C at day 6 00:00; D never. Alerts: D on days 0, 4, 5, 7, 8, 9; A on days 1-3; B on day 6."""
    base = 20_000  # day number of the first test day
    alerted = {0: "D", 1: "A", 2: "A", 3: "A", 4: "D", 5: "D", 6: "B", 7: "D", 8: "D", 9: "D"}
    rows = [(a, base + d, 1.0 if alerted[d] == a else 0.0) for d in range(10) for a in "ABCD"]

    def at(day: int, hours: int) -> int:
        return (base + day) * DAY_NS + hours * 3_600 * 10**9

    failures = pd.DataFrame({"asset_id": ["A", "B", "C"], "t": [at(4, 6), at(8, 12), at(6, 0)]})
    asset = np.array([r[0] for r in rows], dtype=object)
    day = np.array([r[1] for r in rows], dtype=np.int64)
    end = (day + 1) * DAY_NS
    return HandCase(asset, day, end, np.array([r[2] for r in rows]), failures,
                    label_rows(asset, end, failures, horizon_days=2))


def test_the_protocol_arithmetic_on_a_case_worked_by_hand() -> None:
    case = hand_case()
    alerts = select_alerts(case.day, case.score, budget=0.25, seed=0)
    assert alerts.sum() == 10 and np.array_equal(alerts, case.score == 1.0)
    o = outcome(case.asset, case.end, case.y, case.score, alerts, case.failures, 2, probabilistic=True)
    f = figures(o)
    assert int(o.events.sum()) == 3 and int(o.caught.sum()) == 2  # C had no alert
    assert f["events_caught"] == pytest.approx(2 / 3)
    assert f["precision"] == pytest.approx(3 / 10)  # A on days 2 and 3, B on day 6
    assert f["false_alerts_per_asset_month"] == pytest.approx(7 / (40 / (365.25 / 12)))
    # leads: A first warned at the end of day 2 (30 h before day 4 06:00), B at the end of day 6 (36 h)
    assert f["median_lead_hours"] == pytest.approx(33.0) and f["p10_lead_hours"] == pytest.approx(30.6)
    assert int(case.y.sum()) == 6  # two rows before each failure
    assert f["pr_auc"] == pytest.approx(0.5 * 3 / 10 + 0.5 * 6 / 40)
    assert f["brier"] == pytest.approx(10 / 40)
    records = {r["asset_id"]: r for r in o.event_records()}
    assert records["A"]["first_alert_at"] == pd.Timestamp(20_003 * DAY_NS, tz="UTC").isoformat()
    assert records["B"]["lead_hours"] == 36.0
    assert (records["C"]["lead_hours"], records["C"]["first_alert_at"]) == (None, None)
    summary = summarize(o, bootstrap=200, seed=1)
    low, high = summary["events_caught_ci"]
    assert 0 <= low <= 2 / 3 <= high <= 1 and summary["events_caught_n"] == 2 and summary["alerts"] == 10


def test_an_alert_budget_of_five_percent_of_twenty_assets_is_one_alert_a_day() -> None:
    day = np.repeat(np.arange(30), 20)
    alerts = select_alerts(day, np.random.default_rng(0).random(len(day)), 0.05, seed=0)
    assert set(np.bincount(day[alerts])) == {1}  # 0.05 × 20 is not 1.0000000000000002 alerts
    ties = select_alerts(day, np.zeros(len(day)), 0.1, seed=3)
    assert set(np.bincount(day[ties])) == {2}


def test_average_precision_matches_scikit_learn() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(300) < 0.2).astype(int)
    score = np.round(rng.random(300) + y * 0.3, 1)  # with ties
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score))
    unknown = np.where(rng.random(300) < 0.3, np.nan, score)  # NaN and -inf rank last, as one tie
    lowest = np.nan_to_num(unknown, nan=-1.0)
    assert average_precision(y, unknown) == pytest.approx(average_precision_score(y, lowest))
    assert average_precision(y, np.where(np.isnan(unknown), -np.inf, unknown)) == pytest.approx(
        average_precision_score(y, lowest))


def test_baseline_scores_rank_as_their_rules_say() -> None:
    x = pd.DataFrame({"days_since_maintenance": [3.0, 40.0, np.nan, 10.0], "days_since_failure": [1.0, np.nan, np.nan,
                      50.0], "error_count_1d": [0.0, 2.0, 1.0, 1.0], "error_count_7d": [9.0, 2.0, 1.0, 5.0]})
    assert list(np.argsort(-calendar_scores(x), kind="stable")) == [1, 3, 0, 2]  # never serviced: last
    assert list(np.argsort(-error_rule_scores(x), kind="stable")) == [1, 3, 2, 0]
    aged = x.assign(age_days=[100.0, 100.0, 20.0, 100.0])  # never serviced: as old as the asset
    assert list(np.argsort(-calendar_scores(aged), kind="stable")) == [1, 2, 3, 0]


def test_evaluation_reports_the_model_and_all_baselines(history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    telemetry, events = history
    report = evaluate(telemetry, events, None, EvalConfig(5, alert_budget=0.125, bootstrap=50, model=FAST))
    assert report["n_events"] > 5 and len(report["cutoffs"]) == 3 and report["alerts_per_day"] == 1
    for r in (report, *report["baselines"].values()):
        assert 0 <= r["events_caught"] <= 1 and r["alerts"] > 0
        assert r["n_events"] == report["n_events"]
    assert set(report["baselines"]) == {"random", "calendar", "error_rule", "logreg"}
    assert report["baselines"]["random"]["brier"] is None and report["baselines"]["logreg"]["brier"] is not None
    # wear shows for five days before a failure: the model must rank far better than chance
    assert report["pr_auc"] > 2 * report["baselines"]["random"]["pr_auc"]
    assert report["events_caught"] > report["baselines"]["random"]["events_caught"]


def test_too_short_a_history_is_refused_clearly(history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    telemetry, events = history
    short = telemetry[telemetry["timestamp"] < T0 + pd.Timedelta(days=9)]
    with pytest.raises(ConfigError, match="too few for 3 cutoffs"):
        evaluate(short, events, None, EvalConfig(7, bootstrap=0, model=FAST))


# --- artifacts and scoring -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(history: tuple[pd.DataFrame, pd.DataFrame]) -> Artifact:
    telemetry, events = history
    return train(telemetry, events, None, 5, now=datetime(2026, 4, 1, 2, tzinfo=UTC), config=FAST,
                 metrics={"events_caught": 0.5})


def test_a_model_round_trips_through_its_file_and_sidecar(tmp_path: Path, trained: Artifact,
                                                          history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    telemetry, events = history
    sidecar = save(trained, tmp_path / "model.joblib")
    meta = json.loads(sidecar.read_text())
    assert meta["horizon_days"] == 5 and meta["metrics"] == {"events_caught": 0.5}
    assert meta["version_id"].startswith("20260401T020000Z-5d-") and meta["fmon_version"]
    assert meta["train_start"] == "2026-01-01" and meta["feature_names"][0] == "vibration_mm_s_mean_1d"
    loaded = load(tmp_path / "model.joblib")
    at = date(2026, 3, 10)
    risks, again = score(trained, telemetry, events, at), score(loaded, telemetry, events, at)
    assert risks == again and len(risks) == 8
    assert all(isinstance(r, Risk) and 0 <= r.probability <= 1 and r.horizon_days == 5 for r in risks)
    assert [r.probability for r in risks] == sorted((r.probability for r in risks), reverse=True)
    assert all(r.model_version == meta["version_id"] and len(r.top_features) <= 5 for r in risks)
    assert any(r.top_features for r in risks)
    assert all(name in meta["feature_names"] for r in risks for name, _ in r.top_features)


def test_scores_use_no_data_after_the_scored_day(trained: Artifact, history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    telemetry, events = history
    at = date(2026, 2, 20)
    end = pd.Timestamp(at, tz="UTC") + pd.Timedelta(days=1)
    changed = telemetry.copy()
    changed.loc[changed["timestamp"] >= end, "vibration_mm_s"] = 99.0
    late = normalize_events(pd.concat([events, pd.DataFrame({"timestamp": [end], "asset_id": ["pump-3"],
                                                             "kind": ["error"], "component": ["overload"]})]))
    assert score(trained, telemetry, events, at) == score(trained, changed, late, at)


def test_a_model_refuses_history_without_its_metrics(trained: Artifact,
                                                     history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    telemetry, events = history
    with pytest.raises(ArtifactError, match=r"telemetry lacks metric.*temp_c"):
        score(trained, telemetry.drop(columns="temp_c"), events, date(2026, 3, 1))


def test_loading_refuses_a_model_that_does_not_match_its_sidecar(tmp_path: Path, trained: Artifact) -> None:
    path = tmp_path / "m.joblib"
    save(trained, path)
    meta = json.loads(sidecar_path(path).read_text())
    sidecar_path(path).write_text(json.dumps({**meta, "feature_names": [*meta["feature_names"][:-1], "volts_mean_1d"]}))
    with pytest.raises(ArtifactError, match=r"features do not match model .*missing error:overload_count_30d.*"
                                            r"unknown volts_mean_1d"):
        load(path)
    sidecar_path(path).write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(ArtifactError, match=r"model format 99"):
        load(path)
    sidecar_path(path).unlink()
    with pytest.raises(ArtifactError, match=r"sidecar m\.joblib\.json is missing"):
        load(path)
    other = tmp_path / "other.joblib"
    joblib.dump({"not": "a model"}, other)
    sidecar_path(other).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="not an fmon failure model"):
        load(other)


def test_a_type_with_enough_failures_gets_its_own_model(history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    telemetry, events = history
    assets = pd.DataFrame({"asset_id": [f"pump-{i}" for i in range(8)], "type": ["supply"] * 4 + ["sump"] * 4,
                           "installed": pd.Timestamp("2020-01-01", tz="UTC")})
    artifact = train(telemetry, events, assets, 5, now=datetime(2026, 4, 1, tzinfo=UTC),
                     config=replace(FAST, min_type_positives=10))
    assert sorted(artifact.model.boosters) == ["*", "sump", "supply"]
    assert {"age_days", "type=sump", "type=supply"} <= set(artifact.feature_names)
    risks = score(artifact, telemetry, events, date(2026, 3, 1), assets)
    assert len(risks) == 8


# --- scheduled scoring and retraining --------------------------------------------------------------


NOW = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)


def test_the_planner_trains_a_first_model_then_scores_yesterday() -> None:
    assert plan(NOW, Runs(), DataState(rows=100, failures=0)) == []  # nothing to learn from yet
    jobs = plan(NOW, Runs(), DataState(rows=100, failures=3))
    assert [(j.kind, j.day) for j in jobs][:1] == [("train", None)] and jobs[0].reason == "no model yet"
    assert [j.day for j in jobs[1:]] == [date(2026, 3, 3) + timedelta(days=i) for i in range(7)]  # catch-up limit


def test_the_planner_retrains_weekly_or_when_the_history_grew() -> None:
    fresh = Runs(NOW - timedelta(days=2), rows_at_training=1000, failures_at_training=10,
                 last_scored_day=date(2026, 3, 9))
    assert plan(NOW, fresh, DataState(1100, 12)) == []
    assert "8 days old" in plan(NOW, replace(fresh, model_created_at=NOW - timedelta(days=8)),
                                DataState(1100, 12))[0].reason
    assert "grew from 1000 to 1300" in plan(NOW, fresh, DataState(1300, 12))[0].reason
    assert "5 new failures" in plan(NOW, fresh, DataState(1100, 15))[0].reason


def test_the_planner_scores_each_completed_day_once_after_the_settling_time() -> None:
    runs = Runs(NOW - timedelta(days=1), 1000, 10, last_scored_day=date(2026, 3, 7))
    policy = JobPolicy(score_after=time(2, 0))
    assert days_to_score(NOW, runs, policy) == [date(2026, 3, 8)]  # before 02:00 the 9th is not settled
    assert days_to_score(NOW.replace(hour=3), runs, policy) == [date(2026, 3, 8), date(2026, 3, 9)]
    assert days_to_score(NOW.replace(hour=3), replace(runs, last_scored_day=date(2026, 3, 9)), policy) == []


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_csvs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    telemetry, events = fleet(assets=6, days=60, seed=4)
    return write_csvs(tmp_path_factory.mktemp("history"), telemetry, events)


def test_cli_evaluate_writes_a_report_with_the_model_and_baselines(tmp_path: Path,
                                                                   small_csvs: tuple[Path, Path]) -> None:
    telemetry, events = small_csvs
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["maintenance", "evaluate", "--telemetry", str(telemetry), "--events",
                                       str(events), "--horizon", "96h", "--alert-budget", "0.2", "--bootstrap", "30",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    for key in ("events_caught", "precision", "median_lead_hours", "p10_lead_hours", "pr_auc", "brier",
                "false_alerts_per_asset_month", "events_caught_ci", "n_events", "cutoffs", "horizon_days",
                "alert_budget"):
        assert key in report
    assert report["horizon_days"] == 4 and report["alert_budget"] == 0.2
    assert {name: "events_caught" in r for name, r in report["baselines"].items()} == {
        "random": True, "calendar": True, "error_rule": True, "logreg": True}
    lines = result.output.splitlines()
    assert lines[0].startswith("horizon 4 d, alert budget 20%")
    assert [line.split()[0] for line in lines[2:7]] == ["model", "random", "calendar", "error_rule", "logreg"]


def test_cli_train_then_score_writes_risks(tmp_path: Path, small_csvs: tuple[Path, Path]) -> None:
    telemetry, events = small_csvs
    runner = CliRunner()
    model = tmp_path / "model.joblib"
    trained = runner.invoke(main, ["maintenance", "train", "--telemetry", str(telemetry), "--events", str(events),
                                   "--horizon", "3d", "--no-evaluate", "--out", str(model)])
    assert trained.exit_code == 0, trained.output
    assert sidecar_path(model).is_file()
    risks = tmp_path / "risks.csv"
    scored = runner.invoke(main, ["maintenance", "score", "--model", str(model), "--telemetry", str(telemetry),
                                  "--events", str(events), "--at", "2026-02-20", "--out", str(risks)])
    assert scored.exit_code == 0, scored.output
    table = pd.read_csv(risks)
    assert list(table.columns) == ["asset_id", "horizon_days", "probability", "top_features", "model_version"]
    assert len(table) == 6 and (table["horizon_days"] == 3).all()
    assert "scored at the end of 2026-02-20" in scored.output


def test_cli_reports_bad_input_without_a_traceback(tmp_path: Path, small_csvs: tuple[Path, Path]) -> None:
    telemetry, _ = small_csvs
    bad = tmp_path / "events.csv"
    bad.write_text("timestamp,asset_id,kind,component\nyesterday,pump-1,failure,x\n")
    result = CliRunner().invoke(main, ["maintenance", "evaluate", "--telemetry", str(telemetry), "--events", str(bad)])
    assert result.exit_code == 1 and f"{bad}, line 2: bad timestamp 'yesterday'" in result.output
    result = CliRunner().invoke(main, ["maintenance", "evaluate", "--telemetry", str(telemetry), "--events", str(bad),
                                       "--horizon", "30h"])
    assert result.exit_code == 2 and "whole number of days" in result.output
