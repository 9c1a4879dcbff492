"""The baselines every failure model is compared with, as scores per feature row (higher = alert first).

- random: seeded uniform scores, the floor any model must clear;
- calendar: days since the last service (maintenance, or the failure that was repaired), the rule a
  maintenance calendar follows; for an asset never serviced, its age when known, else it comes last;
- error rule: errors in the last 24 h, ties broken by errors in the last 7 days.

The fourth baseline, logistic regression on the same features, is a model (`models.fit_logreg`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]


def random_scores(rows: int, seed: int) -> FloatArray:
    return np.random.default_rng(seed).random(rows)


def calendar_scores(x: pd.DataFrame) -> FloatArray:
    since = x[["days_since_maintenance", "days_since_failure"]].min(axis=1, skipna=True)
    if "age_days" in x.columns:
        since = since.fillna(x["age_days"])
    return since.fillna(-np.inf).to_numpy(dtype=np.float64)


def error_rule_scores(x: pd.DataFrame) -> FloatArray:
    day, week = x["error_count_1d"].fillna(0.0), x["error_count_7d"].fillna(0.0)
    return (day * 1e6 + week).to_numpy(dtype=np.float64)
