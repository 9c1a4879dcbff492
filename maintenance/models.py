"""The failure models: calibrated gradient boosting (per equipment type when there is data enough),
the logistic-regression baseline, and the cheap explanation of each prediction.

`fit_failure_model` trains a `HistGradientBoostingClassifier` on feature rows and calibrates its
scores on later rows: the last half of the training days is cut into blocks; each block is scored
by a booster trained only on rows whose label window ends before the block starts (a purge gap
of the horizon), and a sigmoid (Platt) or isotonic map is fitted on those out-of-time scores. The
final booster is trained on all rows. With too few failures for that, the scores stay uncalibrated
and the model says so (`calibration == "none"`).

Explanations: per feature, (value − training mean) / training std × the feature's permutation
importance (the drop in average precision when the column is shuffled, measured once at training
time). It says which unusual values the model leans on; it is not an additive attribution.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]
from sklearn.impute import SimpleImputer  # type: ignore[import-untyped]
from sklearn.isotonic import IsotonicRegression  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.pipeline import Pipeline, make_pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Calibration = Literal["auto", "sigmoid", "isotonic", "none"]
GLOBAL: Final = "*"


@dataclass(frozen=True, slots=True)
class ModelConfig:
    max_iter: int = 200
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0
    calibration: Calibration = "auto"  # auto: isotonic from 500 out-of-time positives on, else sigmoid
    calibration_blocks: int = 2
    min_type_positives: int = 200  # a type gets its own model from this many positive training rows on
    importance_rows: int = 5000
    threads: int = 1  # OpenMP threads per fit: HistGB spin-waits badly on a busy machine; 1 is often fastest
    seed: int = 0


@dataclass(frozen=True, slots=True)
class TrainingRows:
    """Feature rows with labels, their UTC day (as day numbers) and the type of each row's asset."""

    x: pd.DataFrame
    y: npt.NDArray[np.int_]
    day: npt.NDArray[np.int64]
    types: npt.NDArray[np.object_]

    def subset(self, mask: BoolArray) -> TrainingRows:
        return TrainingRows(self.x[mask], self.y[mask], self.day[mask], self.types[mask])

    @property
    def positives(self) -> int:
        return int(self.y.sum())


class _Sigmoid:
    """Platt scaling on the logit of the raw score."""

    def __init__(self, raw: FloatArray, y: npt.NDArray[np.int_]) -> None:
        self.model = LogisticRegression(C=1e4, max_iter=1000).fit(_logit(raw)[:, None], y)

    def __call__(self, raw: FloatArray) -> FloatArray:
        return np.asarray(self.model.predict_proba(_logit(raw)[:, None])[:, 1], dtype=np.float64)


class _Isotonic:
    def __init__(self, raw: FloatArray, y: npt.NDArray[np.int_]) -> None:
        self.model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)

    def __call__(self, raw: FloatArray) -> FloatArray:
        return np.asarray(self.model.predict(raw), dtype=np.float64)


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


@dataclass(slots=True)
class CalibratedBooster:
    booster: Booster
    calibrator: _Sigmoid | _Isotonic | None
    calibration: str
    mean: FloatArray = field(default_factory=lambda: np.zeros(0))
    std: FloatArray = field(default_factory=lambda: np.zeros(0))
    importance: FloatArray = field(default_factory=lambda: np.zeros(0))

    def predict(self, x: pd.DataFrame) -> FloatArray:
        raw = self.booster.score(x)
        return raw if self.calibrator is None else self.calibrator(raw)


@dataclass(slots=True)
class FailureModel:
    """Boosters by asset type (`GLOBAL` for every type without its own) over fixed feature columns."""

    feature_names: tuple[str, ...]
    horizon_days: int
    boosters: dict[str, CalibratedBooster]

    @property
    def calibration(self) -> dict[str, str]:
        return {t: b.calibration for t, b in self.boosters.items()}

    def _route(self, types: Sequence[object]) -> npt.NDArray[np.object_]:
        return np.asarray([t if t in self.boosters else GLOBAL for t in types], dtype=object)

    def predict(self, x: pd.DataFrame, types: Sequence[object]) -> FloatArray:
        """Probability of a failure within the horizon, per row."""
        out = np.zeros(len(x), dtype=np.float64)
        keys = self._route(types)
        for key in set(keys):
            mask = keys == key
            out[mask] = self.boosters[key].predict(x[list(self.feature_names)][mask])
        return out

    def explain(self, x: pd.DataFrame, types: Sequence[object], top: int = 5) -> list[tuple[tuple[str, float], ...]]:
        """Per row, the `top` features by |z-score × permutation importance| (see the module docstring)."""
        keys = self._route(types)
        values = x[list(self.feature_names)].to_numpy(dtype=np.float64)
        out: list[tuple[tuple[str, float], ...]] = []
        for row, key in zip(values, keys, strict=True):
            booster = self.boosters[key]
            if len(booster.importance) == 0:
                out.append(())
                continue
            with np.errstate(invalid="ignore"):
                z = np.nan_to_num((row - booster.mean) / booster.std)
            contribution = z * booster.importance
            best = np.argsort(-np.abs(contribution), kind="stable")[:top]
            out.append(tuple((self.feature_names[i], round(float(contribution[i]), 6))
                             for i in best if contribution[i] != 0))
        return out


def fit_failure_model(rows: TrainingRows, horizon_days: int, config: ModelConfig = ModelConfig(), *,
                      explain: bool = False) -> FailureModel:
    """A global booster and one per type with `min_type_positives` positive rows or more."""
    boosters = {GLOBAL: fit_booster(rows, horizon_days, config)}
    for t in sorted({str(t) for t in rows.types if t}):
        of_type = rows.subset(rows.types == t)
        if len(set(rows.types)) > 1 and of_type.positives >= config.min_type_positives:
            boosters[t] = fit_booster(of_type, horizon_days, config)
    if explain:
        for key, booster in boosters.items():
            _add_explanation(booster, rows if key == GLOBAL else rows.subset(rows.types == key), config)
    return FailureModel(tuple(rows.x.columns), horizon_days, boosters)


class Booster:
    """A `HistGradientBoostingClassifier` whose columns that are all NaN in training are fed as 0.

    scikit-learn 1.9.1 cannot bin an all-NaN column (ValueError from `sliding_window_view`); such a
    column carries nothing the booster could split on, so a constant is equivalent.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.model = HistGradientBoostingClassifier(
            max_iter=config.max_iter, learning_rate=config.learning_rate, max_leaf_nodes=config.max_leaf_nodes,
            min_samples_leaf=config.min_samples_leaf, l2_regularization=config.l2_regularization,
            early_stopping=False, random_state=config.seed)
        self.threads = config.threads
        self.empty = np.zeros(0, dtype=bool)

    @property
    def n_features_in_(self) -> int:
        return int(self.model.n_features_in_)

    def fit(self, x: pd.DataFrame, y: npt.NDArray[np.int_]) -> Booster:
        values = x.to_numpy(dtype=np.float64, copy=True)
        self.empty = np.isnan(values).all(axis=0)
        values[:, self.empty] = 0.0
        with threadpool_limits(self.threads, user_api="openmp"):
            self.model.fit(values, y)
        return self

    def score(self, x: pd.DataFrame) -> FloatArray:
        values = x.to_numpy(dtype=np.float64, copy=True)
        values[:, self.empty] = 0.0
        with threadpool_limits(self.threads, user_api="openmp"):
            return np.asarray(self.model.predict_proba(values)[:, 1], dtype=np.float64)


def fit_booster(rows: TrainingRows, horizon_days: int, config: ModelConfig) -> CalibratedBooster:
    if rows.positives == 0 or rows.positives == len(rows.y):
        raise ValueError("training rows need both failures and non-failures")
    raw, y = _out_of_time_scores(rows, horizon_days, config)
    calibrator, method = _calibrator(raw, y, config)
    booster = Booster(config).fit(rows.x, rows.y)
    return CalibratedBooster(booster, calibrator, method)


def _out_of_time_scores(rows: TrainingRows, horizon_days: int,
                        config: ModelConfig) -> tuple[FloatArray, npt.NDArray[np.int_]]:
    """Scores of the later training blocks by boosters that saw only rows labelled before each block."""
    if config.calibration == "none" or config.calibration_blocks < 1:
        return np.zeros(0), np.zeros(0, dtype=np.int_)
    first, last = int(rows.day.min()), int(rows.day.max())
    middle = first + (last - first + 1) // 2
    edges = np.linspace(middle, last + 1, config.calibration_blocks + 1).round().astype(np.int64)
    raws, ys = [], []
    for start, end in itertools.pairwise(edges):
        train = rows.subset(rows.day < start - horizon_days)
        block = rows.subset((rows.day >= start) & (rows.day < end))
        if len(block.y) == 0 or train.positives == 0 or train.positives == len(train.y):
            continue
        raws.append(Booster(config).fit(train.x, train.y).score(block.x))
        ys.append(block.y)
    if not raws:
        return np.zeros(0), np.zeros(0, dtype=np.int_)
    return np.concatenate(raws).astype(np.float64), np.concatenate(ys)


def _calibrator(raw: FloatArray, y: npt.NDArray[np.int_],
                config: ModelConfig) -> tuple[_Sigmoid | _Isotonic | None, str]:
    positives = int(y.sum())
    if config.calibration == "none" or positives < 3 or len(y) - positives < 3:
        return None, "none"
    method = config.calibration
    if method == "auto":
        method = "isotonic" if positives >= 500 else "sigmoid"
    return (_Isotonic(raw, y), method) if method == "isotonic" else (_Sigmoid(raw, y), method)


def _add_explanation(booster: CalibratedBooster, rows: TrainingRows, config: ModelConfig) -> None:
    booster.mean = rows.x.mean().fillna(0.0).to_numpy(dtype=np.float64)
    std = rows.x.std(ddof=0).to_numpy(dtype=np.float64)
    booster.std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    booster.importance = permutation_importance(booster, rows, config)


def permutation_importance(booster: CalibratedBooster, rows: TrainingRows, config: ModelConfig) -> FloatArray:
    """Drop in average precision when one column is shuffled (one pass, on at most `importance_rows` rows)."""
    rng = np.random.default_rng(config.seed)
    take = rng.permutation(len(rows.y))[: config.importance_rows]
    x, y = rows.x.iloc[take].reset_index(drop=True), rows.y[take]
    base = average_precision(y, booster.predict(x))
    drops = np.zeros(x.shape[1])
    for j, name in enumerate(x.columns):
        if x[name].nunique(dropna=False) <= 1:
            continue
        shuffled = x.copy()
        shuffled[name] = x[name].to_numpy()[rng.permutation(len(x))]
        drops[j] = base - average_precision(y, booster.predict(shuffled))
    return np.clip(np.nan_to_num(drops), 0.0, None)


def fit_logreg(rows: TrainingRows, seed: int = 0) -> Pipeline:
    """The linear baseline on the same features: median imputation, standardisation, L2 logistic regression."""
    model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                          LogisticRegression(C=0.1, max_iter=5000, random_state=seed))
    return model.fit(rows.x, rows.y)


def average_precision(y: npt.NDArray[np.int_], score: FloatArray) -> float:
    """Area under the precision-recall curve as a step sum over distinct thresholds (sklearn's definition);
    NaN without positives."""
    positives = int(np.sum(y))
    if positives == 0:
        return float("nan")
    clean = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=-np.inf)
    order = np.argsort(-clean, kind="mergesort")
    s, t = clean[order], np.asarray(y)[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # the last row of each distinct score
    tp = np.cumsum(t)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
