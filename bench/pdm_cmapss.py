"""bench/pdm_cmapss: failure prediction and remaining useful life on NASA C-MAPSS FD001.

The data go through the bring-your-own CSV path: bench/cmapss_to_csv.py writes them to a temporary
directory (one cycle = one day, engines' first cycles 10 days apart, one failure per training
engine at the end of its last cycle) and `maintenance.history` loads them back.

1. The evaluation protocol on the 100 training engines (run to failure) at H = 7 and 30 days
   (cycles), alert budget 5 % of the engines in service each day. Feature windows 1, 7 and 30
   cycles, trend over 30 (the published GBT figure uses 30-cycle rolling means and slopes).
2. RUL: a HistGradientBoostingRegressor on the same rolling features (no event features), target
   RUL capped at 125, trained on all training engines, scored on the last cycle of each test engine
   against RUL_FD001: RMSE and the Saxena score (d = predicted − true; exp(−d/13) − 1 for d < 0,
   exp(d/10) − 1 otherwise). Beside it: predicting the mean, and the published figures.

    .venv/bin/python -m bench.pdm_cmapss [--bootstrap 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from bench.cmapss_to_csv import convert
from bench.pdm_common import data_dir, run_protocol, write_results
from maintenance.evaluate import EvalConfig
from maintenance.features import FeatureSpec, build_features, infer_spec
from maintenance.history import empty_events, load_assets_csv, load_events_csv, load_telemetry_csv

CAP = 125
PUBLISHED = {"GBT on rolling features (30 cycles)": 12.7, "deep LSTM": "15-16", "1D-CNN": 17}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--budget", type=float, default=0.05)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cmapss-byo-") as tmp:
        paths = convert(data_dir() / "cmapss", Path(tmp))
        train = (load_telemetry_csv(paths["train_telemetry"]), load_events_csv(paths["train_events"]),
                 load_assets_csv(paths["train_assets"]))
        test = (load_telemetry_csv(paths["test_telemetry"]), load_assets_csv(paths["test_assets"]))
        truth = pd.read_csv(paths["test_rul"]).set_index("asset_id")["rul_cycles"]
    spec = infer_spec(*train, windows_days=(1, 7, 30), trend_days=30)
    print(f"C-MAPSS FD001: {len(train[0])} training cycles of {train[0]['asset_id'].nunique()} engines, "
          f"{len(spec.metrics)} varying channels, {len(spec.names())} features")
    reports = {f"H{h}": run_protocol(f"C-MAPSS FD001 training engines, H = {h} cycles", *train,
                                     EvalConfig(h, alert_budget=args.budget, bootstrap=args.bootstrap), spec)
               for h in (7, 30)}
    rul = rul_variant(train[0], train[2], test[0], test[1], truth, spec)
    write_results("pdm_cmapss", {"args": vars(args), "reports": reports, "rul": rul, "published_rmse": PUBLISHED})


def rul_variant(train_t: pd.DataFrame, train_a: pd.DataFrame, test_t: pd.DataFrame, test_a: pd.DataFrame,
                truth: pd.Series, spec: FeatureSpec) -> dict[str, Any]:
    started = time.perf_counter()
    no_events = empty_events()
    x = build_features(train_t, no_events, spec, train_a)
    used = [c for c in x.columns if x[c].notna().any()]  # with one reading a day, 1-day stds are all NaN
    last_day = x.index.to_frame(index=False).groupby("asset_id")["day"].transform("max")
    target = np.minimum(((last_day - x.index.get_level_values("day").to_series(index=x.index).reset_index(drop=True))
                         .dt.days).to_numpy(), CAP)
    model = HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20,
                                          l2_regularization=1.0, early_stopping=False, random_state=0)
    with threadpool_limits(1, user_api="openmp"):
        model.fit(x[used].to_numpy(dtype=np.float64), target)
        test_x = build_features(test_t, no_events, spec, test_a).groupby(level="asset_id").tail(1)
        predicted = model.predict(test_x[used].to_numpy(dtype=np.float64))
    true = truth.reindex(test_x.index.get_level_values("asset_id")).to_numpy(dtype=np.float64)
    rows = {"GBT, rolling features (fmon)": predicted, "mean of the capped training RUL": np.full(len(true),
                                                                                                  target.mean())}
    results = {name: {"rmse": rmse(p, true), "rmse_vs_capped_truth": rmse(p, np.minimum(true, CAP)),
                      "saxena": saxena(p, true)} for name, p in rows.items()}
    seconds = round(time.perf_counter() - started, 1)
    print(f"\n== C-MAPSS FD001 RUL on the last cycle of the 100 test engines "
          f"(training RUL capped at {CAP}; {seconds} s)")
    print(f"{'model':<36} {'RMSE':>6} {'RMSE vs capped truth':>21} {'Saxena score':>13}")
    for name, r in results.items():
        print(f"{name:<36} {r['rmse']:>6.2f} {r['rmse_vs_capped_truth']:>21.2f} {r['saxena']:>13.1f}")
    for name, value in PUBLISHED.items():
        print(f"{'published: ' + name:<36} {value!s:>6}")
    return {"results": results, "seconds": seconds}


def rmse(predicted: np.ndarray, true: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - true) ** 2)))


def saxena(predicted: np.ndarray, true: np.ndarray) -> float:
    """PHM08 scoring function: late predictions (d > 0) cost more than early ones."""
    d = predicted - true
    return float(np.sum(np.where(d < 0, np.exp(-d / 13) - 1, np.exp(d / 10) - 1)))


if __name__ == "__main__":
    main()
