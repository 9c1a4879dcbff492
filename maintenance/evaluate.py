"""Labels and the evaluation protocol of failure prediction (docs/equipment-health.md).

- **Label** of row (asset, D) at horizon H days: a failure of the asset in (D+1 00:00, D+1 00:00 + H].
  Rows whose label window runs past the end of the data are dropped (unknown, not negative).
- **Time split**: the last `test_fraction` of the days is cut into `cutoffs` test blocks; the model
  of block i is trained on rows of days < cutoff_i − H only (a purge gap of H: no training label
  window reaches into the test block), then scores the block. Blocks are pooled.
- **Alerts**: each test day, the k = ceil(budget × assets that day) highest-scoring assets
  (ties broken by a seeded random order). An alert at the end of day D is true when a failure
  follows within H.
- **Events**: failures (one per asset and instant) whose last chance to be warned of, the last
  midnight before them, is a test-row end. Caught when an alert on that asset fell in
  [failure − H, failure); lead time = failure − the first such alert, in hours.
- **Figures**: events caught (fraction), alert precision, false alerts per asset-month
  (30.4375 asset-days), median and 10th-percentile lead, PR-AUC (average precision) and Brier
  score on the test rows (Brier only for probabilities); 95 % intervals by bootstrap over assets
  (the alerts stay as chosen; the assets are resampled with their events, alerts and rows).
- **Baselines** at the same budget: random, calendar, error rule (`maintenance.baselines`), and
  logistic regression on the same features.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.errors import ConfigError
from maintenance.baselines import calendar_scores, error_rule_scores, random_scores
from maintenance.features import DAY, FeatureSpec, build_features, infer_spec, row_types
from maintenance.models import ModelConfig, TrainingRows, average_precision, fit_failure_model, fit_logreg

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
DAY_NS: Final = 86_400 * 10**9
HOUR_NS: Final = 3_600 * 10**9
MONTH_DAYS: Final = 365.25 / 12
METHODS: Final = ("model", "random", "calendar", "error_rule", "logreg")


@dataclass(frozen=True, slots=True)
class EvalConfig:
    horizon_days: int
    alert_budget: float = 0.05
    cutoffs: int = 3
    test_fraction: float = 0.5
    bootstrap: int = 500
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if self.horizon_days < 1:
            raise ConfigError("the horizon must be at least one day")
        if not 0 < self.alert_budget <= 1:
            raise ConfigError("the alert budget is a fraction of the fleet in (0, 1]")
        if self.cutoffs < 1 or not 0 < self.test_fraction < 1:
            raise ConfigError("need at least one cutoff and a test fraction in (0, 1)")


# --- labelled rows ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dataset:
    """Labelled feature rows; `day` counts days since 1970-01-01, `end` is the row's instant (ns, UTC)."""

    x: pd.DataFrame
    y: npt.NDArray[np.int_]
    day: IntArray
    end: IntArray
    asset: npt.NDArray[np.object_]
    types: npt.NDArray[np.object_]
    failures: pd.DataFrame  # asset_id, t (ns): one row per asset and failure instant
    spec: FeatureSpec

    def rows(self, mask: BoolArray) -> TrainingRows:
        return TrainingRows(self.x[mask], self.y[mask], self.day[mask], self.types[mask])


def failure_instants(events: pd.DataFrame) -> pd.DataFrame:
    """One row per asset and failure instant (components failing together are one event)."""
    failures = events.loc[events["kind"] == "failure", ["asset_id", "timestamp"]].drop_duplicates()
    t = failures["timestamp"].dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return pd.DataFrame({"asset_id": failures["asset_id"].to_numpy(dtype=object), "t": t}).sort_values(
        ["asset_id", "t"], kind="stable").reset_index(drop=True)


def label_rows(asset: npt.NDArray[np.object_], end: IntArray, failures: pd.DataFrame,
               horizon_days: int) -> npt.NDArray[np.int_]:
    """1 where the asset fails in (end, end + H], else 0."""
    order = np.argsort(end, kind="stable")
    left = pd.DataFrame({"t": end[order], "asset_id": asset[order]})
    right = failures.sort_values("t", kind="stable").assign(next_failure=lambda f: f["t"].astype("Int64"))
    merged = pd.merge_asof(left, right, on="t", by="asset_id", direction="forward", allow_exact_matches=False)
    never = np.iinfo(np.int64).max
    following = merged["next_failure"].to_numpy(dtype=np.int64, na_value=never)
    y = np.zeros(len(end), dtype=np.int_)
    y[order] = (following != never) & (following - end[order] <= horizon_days * DAY_NS)
    return y


def make_dataset(telemetry: pd.DataFrame, events: pd.DataFrame, assets: pd.DataFrame | None,
                 spec: FeatureSpec, horizon_days: int) -> Dataset:
    """Feature rows with labels; rows whose label window passes the end of the telemetry are dropped."""
    x = build_features(telemetry, events, spec, assets)
    days = pd.DatetimeIndex(x.index.get_level_values("day")).tz_localize(None)
    end = days.to_numpy(dtype="datetime64[ns]").astype(np.int64) + DAY_NS
    asset = x.index.get_level_values("asset_id").to_numpy(dtype=object)
    failures = failure_instants(events)
    y = label_rows(asset, end, failures, horizon_days)
    observed = pd.Timestamp(telemetry["timestamp"].max()).floor("D") + DAY
    keep = end + horizon_days * DAY_NS <= observed.tz_localize(None).as_unit("ns").value
    types = row_types(x.index.get_level_values("asset_id"), assets)
    return Dataset(x[keep], y[keep], end[keep] // DAY_NS - 1, end[keep], asset[keep], types[keep], failures, spec)


# --- the time split --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fold:
    """Train on days < `train_until` (= cutoff − H); test on days in [`test_start`, `test_end`)."""

    train_until: int
    test_start: int
    test_end: int

    def masks(self, day: IntArray) -> tuple[BoolArray, BoolArray]:
        return day < self.train_until, (day >= self.test_start) & (day < self.test_end)


def make_folds(day: IntArray, horizon_days: int, cutoffs: int, test_fraction: float) -> list[Fold]:
    if len(day) == 0:
        raise ConfigError("no labelled rows: the history is shorter than the horizon")
    first, last = int(day.min()), int(day.max())
    test_start = first + round((last - first + 1) * (1 - test_fraction))
    if last + 1 - test_start < cutoffs or test_start - horizon_days <= first:
        raise ConfigError(f"{last - first + 1} labelled days are too few for {cutoffs} cutoffs "
                          f"with a {horizon_days}-day purge gap")
    edges = np.linspace(test_start, last + 1, cutoffs + 1).round().astype(np.int64)
    return [Fold(int(a) - horizon_days, int(a), int(b)) for a, b in itertools.pairwise(edges)]


# --- alerts and their outcome ----------------------------------------------------------------------


def select_alerts(day: IntArray, score: FloatArray, budget: float, seed: int) -> BoolArray:
    """Per day, the ceil(budget × rows that day) highest scores (ties in a seeded random order)."""
    tiebreak = np.random.default_rng(seed).random(len(day))
    order = np.lexsort((tiebreak, -np.nan_to_num(score, nan=-np.inf), day))
    _, first, counts = np.unique(day[order], return_index=True, return_counts=True)
    rank = np.arange(len(day)) - np.repeat(first, counts)
    k = np.ceil(budget * counts - 1e-9).astype(np.int64)
    alerts = np.zeros(len(day), dtype=bool)
    alerts[order] = rank < np.repeat(k, counts)
    return alerts


@dataclass(frozen=True, slots=True)
class Outcome:
    """Per-asset tallies of one method on the test rows, for point estimates and the bootstrap."""

    events: FloatArray
    caught: FloatArray
    alerts: FloatArray
    true_alerts: FloatArray
    asset_days: FloatArray
    leads: list[FloatArray]
    rows: list[IntArray]
    y: npt.NDArray[np.int_]
    score: FloatArray
    probabilistic: bool
    event_table: pd.DataFrame  # asset_id, t, first_alert (ns; NaN when missed)

    def event_records(self) -> list[dict[str, Any]]:
        """Each evaluated failure: when, the first alert in its window, the lead in hours."""
        table = self.event_table
        out = []
        for asset, t, first in zip(table["asset_id"].to_numpy(dtype=object), table["t"].to_numpy(dtype=np.int64),
                                   table["first_alert"].to_numpy(dtype=np.float64), strict=True):
            caught = not np.isnan(first)
            out.append({"asset_id": str(asset), "failure_at": _iso(int(t)),
                        "first_alert_at": _iso(int(first)) if caught else None,
                        "lead_hours": float((t - first) / HOUR_NS) if caught else None})
        return out


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat()


def outcome(asset: npt.NDArray[np.object_], end: IntArray, y: npt.NDArray[np.int_], score: FloatArray,
            alerts: BoolArray, failures: pd.DataFrame, horizon_days: int, *, probabilistic: bool) -> Outcome:
    """Tally alerts and events per asset (assets in sorted order)."""
    ids, index = np.unique(asset, return_inverse=True)
    n = len(ids)
    table = events_caught(asset, end, alerts, failures, horizon_days)
    position = {a: i for i, a in enumerate(ids)}
    at = table["asset_id"].map(position).to_numpy(dtype=np.int64)
    caught = table["first_alert"].notna().to_numpy()
    lead_hours = (table["t"] - table["first_alert"]).to_numpy(dtype=np.float64) / HOUR_NS
    return Outcome(
        events=np.bincount(at, minlength=n).astype(np.float64),
        caught=np.bincount(at[caught], minlength=n).astype(np.float64),
        alerts=np.bincount(index, weights=alerts.astype(np.float64), minlength=n).astype(np.float64),
        true_alerts=np.bincount(index, weights=(alerts & (y == 1)).astype(np.float64), minlength=n).astype(np.float64),
        asset_days=np.bincount(index, minlength=n).astype(np.float64),
        leads=[lead_hours[caught & (at == i)] for i in range(n)],
        rows=[np.flatnonzero(index == i) for i in range(n)], y=y, score=score, probabilistic=probabilistic,
        event_table=table)


def events_caught(asset: npt.NDArray[np.object_], end: IntArray, alerts: BoolArray, failures: pd.DataFrame,
                  horizon_days: int) -> pd.DataFrame:
    """The failures of the test period (their last chance, the midnight before, is a test-row end) with the
    first alert on their asset in [failure − H, failure), NaN when there was none."""
    last_chance = (failures["t"] - 1) // DAY_NS * DAY_NS
    window = failures["asset_id"].isin(set(asset)) & (last_chance >= end.min()) & (last_chance <= end.max())
    events = failures[window].reset_index(drop=True)
    raised = pd.DataFrame({"asset_id": asset[alerts], "alert": end[alerts]})
    pairs = events.reset_index(names="event").merge(raised, on="asset_id")
    inside = (pairs["alert"] >= pairs["t"] - horizon_days * DAY_NS) & (pairs["alert"] < pairs["t"])
    first = pairs[inside].groupby("event")["alert"].min()
    return cast(pd.DataFrame, events.assign(first_alert=first.reindex(events.index).astype("float64")))


def figures(o: Outcome, sample: IntArray | None = None) -> dict[str, float | None]:
    """The protocol's figures over the assets in `sample` (indices, repeats allowed; default all)."""
    s = np.arange(len(o.events)) if sample is None else sample
    events, caught, alerts = o.events[s].sum(), o.caught[s].sum(), o.alerts[s].sum()
    true_alerts, asset_days = o.true_alerts[s].sum(), o.asset_days[s].sum()
    leads = np.concatenate([o.leads[i] for i in s]) if len(s) else np.zeros(0)
    rows = np.concatenate([o.rows[i] for i in s]) if len(s) else np.zeros(0, dtype=np.int64)
    y, score = o.y[rows], o.score[rows]
    return {
        "events_caught": _ratio(caught, events),
        "precision": _ratio(true_alerts, alerts),
        "false_alerts_per_asset_month": _ratio(alerts - true_alerts, asset_days / MONTH_DAYS),
        "median_lead_hours": float(np.median(leads)) if len(leads) else None,
        "p10_lead_hours": float(np.percentile(leads, 10)) if len(leads) else None,
        "pr_auc": _finite(average_precision(y, score)) if len(y) else None,
        "brier": float(np.mean((score - y) ** 2)) if o.probabilistic and len(y) else None,
    }


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summarize(o: Outcome, bootstrap: int, seed: int) -> dict[str, Any]:
    """Point figures, counts, and 95 % bootstrap intervals (`<figure>_ci`) over assets."""
    point: dict[str, Any] = dict(figures(o))
    point |= {"n_events": int(o.events.sum()), "events_caught_n": int(o.caught.sum()),
              "alerts": int(o.alerts.sum()), "true_alerts": int(o.true_alerts.sum())}
    rng = np.random.default_rng(seed)
    n = len(o.events)
    samples = [figures(o, rng.integers(0, n, n)) for _ in range(bootstrap)] if n else []
    for name in ("events_caught", "precision", "false_alerts_per_asset_month", "median_lead_hours",
                 "p10_lead_hours", "pr_auc", "brier"):
        values = np.array([v for s in samples if (v := s[name]) is not None], dtype=np.float64)
        ok = point[name] is not None and len(values) >= 0.5 * max(bootstrap, 1)
        point[f"{name}_ci"] = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if ok else None
    return point


# --- the protocol ----------------------------------------------------------------------------------


def fold_scores(data: Dataset, folds: list[Fold], config: EvalConfig) -> tuple[IntArray, dict[str, FloatArray],
                                                                                   list[dict[str, Any]]]:
    """Test-row indices (pooled over folds) and each method's scores of them; a record per fold."""
    parts: dict[str, list[FloatArray]] = {m: [] for m in METHODS}
    tested: list[IntArray] = []
    records = []
    for i, fold in enumerate(folds):
        train_mask, test_mask = fold.masks(data.day)
        train, test = data.rows(train_mask), data.rows(test_mask)
        if train.positives == 0:
            raise ConfigError(f"no failure is labelled before cutoff {i + 1} ({_iso_day(fold.test_start)}); "
                              "use fewer cutoffs or a smaller test fraction")
        model = fit_failure_model(train, config.horizon_days, config.model)
        parts["model"].append(model.predict(test.x, list(test.types)))
        logreg = fit_logreg(train, config.seed)
        parts["logreg"].append(np.asarray(logreg.predict_proba(test.x)[:, 1], dtype=np.float64))
        parts["random"].append(random_scores(len(test.y), config.seed + i))
        parts["calendar"].append(calendar_scores(test.x))
        parts["error_rule"].append(error_rule_scores(test.x))
        tested.append(np.flatnonzero(test_mask))
        records.append({"cutoff": _iso_day(fold.test_start), "train_days": [_iso_day(int(data.day.min())),
                        _iso_day(fold.train_until - 1)], "test_days": [_iso_day(fold.test_start),
                        _iso_day(fold.test_end - 1)], "train_rows": len(train.y), "train_positives": train.positives,
                        "test_rows": len(test.y), "test_positives": test.positives,
                        "calibration": model.calibration})
    return np.concatenate(tested), {m: np.concatenate(p) for m, p in parts.items()}, records


def evaluate(telemetry: pd.DataFrame, events: pd.DataFrame, assets: pd.DataFrame | None, config: EvalConfig,
             spec: FeatureSpec | None = None) -> dict[str, Any]:
    """Run the protocol; the report's top level is the model's figures, `baselines` the others'."""
    spec = spec or infer_spec(telemetry, events, assets)
    data = make_dataset(telemetry, events, assets, spec, config.horizon_days)
    folds = make_folds(data.day, config.horizon_days, config.cutoffs, config.test_fraction)
    rows, scores, records = fold_scores(data, folds, config)
    results = {}
    for method in METHODS:
        alerts = select_alerts(data.day[rows], scores[method], config.alert_budget, config.seed)
        o = outcome(data.asset[rows], data.end[rows], data.y[rows], scores[method], alerts, data.failures,
                    config.horizon_days, probabilistic=method in ("model", "logreg"))
        results[method] = summarize(o, config.bootstrap, config.seed)
        if method == "model":
            results[method]["events"] = o.event_records()
    per_day = pd.Series(data.day[rows]).value_counts()
    return {
        **results["model"],
        "baselines": {m: results[m] for m in METHODS if m != "model"},
        "horizon_days": config.horizon_days, "alert_budget": config.alert_budget,
        "alerts_per_day": math.ceil(config.alert_budget * float(per_day.median()) - 1e-9),
        "assets_per_day": float(per_day.median()),
        "cutoffs": [r["cutoff"] for r in records], "folds": records,
        "n_assets": len(np.unique(data.asset)), "n_test_rows": len(rows),
        "test_positive_rate": float(data.y[rows].mean()), "n_features": data.x.shape[1],
        "bootstrap": config.bootstrap, "seed": config.seed,
    }


def _iso_day(day: int) -> str:
    return str(np.datetime64(day, "D"))


# --- the human summary -----------------------------------------------------------------------------


def summary_table(report: Mapping[str, Any]) -> list[str]:
    """Model and baselines side by side, one line each, with 95 % intervals in brackets."""
    head = (f"horizon {report['horizon_days']} d, alert budget {report['alert_budget']:.0%} "
            f"= {report['alerts_per_day']} alert(s)/day of ~{report['assets_per_day']:.0f} assets in service "
            f"({report['n_assets']} in all), "
            f"{len(report['cutoffs'])} cutoffs from {report['cutoffs'][0]}, {report['n_events']} failure events")
    cells = [["method", "caught", "", "precision", "", "false/asset-mo", "", "lead h p50", "p10", "PR-AUC", "",
              "Brier"]]
    for name, r in {"model": report, **report["baselines"]}.items():
        cells.append([
            name, f"{r['events_caught_n']}/{r['n_events']} = {_fmt(r['events_caught'])}", _ci(r, "events_caught"),
            _fmt(r["precision"]), _ci(r, "precision"), _fmt(r["false_alerts_per_asset_month"]),
            _ci(r, "false_alerts_per_asset_month"), _fmt(r["median_lead_hours"], 0), _fmt(r["p10_lead_hours"], 0),
            _fmt(r["pr_auc"], 3), _ci(r, "pr_auc", 3), _fmt(r["brier"], 4)])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in cells]
    return [head, *lines]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(r: Mapping[str, Any], name: str, digits: int = 2) -> str:
    ci = r.get(f"{name}_ci")
    return "" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
