"""Feature rows for failure models: one row per asset per UTC day, built from history frames.

Row (asset, D) describes the asset as it was known at the end of day D, that is at D+1 00:00 UTC,
and uses only telemetry and events stamped before that instant: changing anything later never
changes row D (tests/test_maintenance_ml.py checks it). Rows exist for every day from an
asset's first to its last telemetry day (or `until`), also on days without telemetry.

Per metric, over windows of whole days ending with D (default 1 d = "the last 24 h" and 7 d):
mean, std, min, max; the least-squares slope of the daily means over `trend_days`; the short
minus the long window mean. Counter metrics (monotonic, such as run counts) give their increase
per window instead. Per event kind: counts per window (errors also per component) and the days
since the last one (maintenance and failures also per component). Asset age and one-hot asset
type when an assets frame says so. Everything is vectorized; the `FeatureSpec` fixes the columns,
so a model trained on one history scores another with the same columns.

Labels, models and evaluation are in `maintenance.evaluate`, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.errors import ConfigError
from maintenance.history import EVENT_KINDS, TELEMETRY_KEYS, TS_DTYPE

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
DAY: Final = pd.Timedelta(days=1)
DAY_NS: Final = 86_400 * 10**9


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Which columns a feature frame has; learned from training history (`infer_spec`), kept in artifacts."""

    metrics: tuple[str, ...]
    counters: tuple[str, ...] = ()
    components: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # event kind -> components
    types: tuple[str, ...] = ()
    with_age: bool = False
    windows_days: tuple[int, ...] = (1, 7)
    event_windows_days: tuple[int, ...] = (1, 7, 30)
    trend_days: int = 7

    def __post_init__(self) -> None:
        if not self.windows_days or min(self.windows_days) < 1 or self.trend_days < 3:
            raise ConfigError("feature windows must be whole days >= 1 and the trend window >= 3 days")
        if not {1, 7} <= set(self.event_windows_days):
            raise ConfigError("event windows must include 1 and 7 days (the error-count baseline uses them)")
        if set(self.counters) - set(self.metrics):
            raise ConfigError("counters must be metrics")

    @property
    def gauges(self) -> tuple[str, ...]:
        return tuple(m for m in self.metrics if m not in self.counters)

    def names(self) -> tuple[str, ...]:
        """Feature column names, in column order."""
        names: list[str] = []
        short, long = min(self.windows_days), max(self.windows_days)
        for m in self.gauges:
            names += [f"{m}_{stat}_{w}d" for w in self.windows_days for stat in ("mean", "std", "min", "max")]
            names.append(f"{m}_slope_{self.trend_days}d")
            if short != long:
                names.append(f"{m}_dev_{short}d_{long}d")
        names += [f"{c}_delta_{w}d" for c in self.counters for w in self.windows_days]
        for kind in EVENT_KINDS:
            names += [f"{kind}_count_{w}d" for w in self.event_windows_days]
            names.append(f"days_since_{kind}")
            for comp in self.components.get(kind, ()):
                if kind == "error":
                    names += [f"error:{comp}_count_{w}d" for w in self.event_windows_days]
                else:
                    names.append(f"days_since_{kind}:{comp}")
        if self.with_age:
            names.append("age_days")
        names += [f"type={t}" for t in self.types]
        return tuple(names)

    @property
    def lookback_days(self) -> int:
        """Days of telemetry a row needs, its own included (events: all history, for the days-since
        features); one more than the longest window, for the counters' value before the window."""
        return max(*self.windows_days, self.trend_days) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics), "counters": list(self.counters),
                "components": {k: list(v) for k, v in self.components.items()}, "types": list(self.types),
                "with_age": self.with_age, "windows_days": list(self.windows_days),
                "event_windows_days": list(self.event_windows_days), "trend_days": self.trend_days}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(tuple(data["metrics"]), tuple(data["counters"]),
                   {k: tuple(v) for k, v in data["components"].items()}, tuple(data["types"]),
                   bool(data["with_age"]), tuple(data["windows_days"]), tuple(data["event_windows_days"]),
                   int(data["trend_days"]))


def infer_spec(telemetry: pd.DataFrame, events: pd.DataFrame, assets: pd.DataFrame | None = None, *,
               max_components: int = 10, windows_days: tuple[int, ...] = (1, 7),
               event_windows_days: tuple[int, ...] = (1, 7, 30), trend_days: int = 7) -> FeatureSpec:
    """The spec of a training history: its varying metrics, counters, frequent components, types."""
    metrics = tuple(c for c in telemetry.columns if c not in TELEMETRY_KEYS and telemetry[c].nunique() > 1)
    counters = tuple(m for m in metrics if _is_counter(telemetry, m))
    components = {kind: _top_components(events, kind, max_components) for kind in EVENT_KINDS}
    types: tuple[str, ...] = ()
    with_age = False
    if assets is not None:
        known = sorted({str(t) for t in assets["type"] if t is not None})
        types = tuple(known) if len(known) > 1 else ()
        with_age = bool(assets["installed"].notna().any())
    return FeatureSpec(metrics, counters, {k: v for k, v in components.items() if v}, types, with_age,
                       windows_days, event_windows_days, trend_days)


def _is_counter(telemetry: pd.DataFrame, metric: str) -> bool:
    """Monotonic non-decreasing per asset (99 % of steps), with many distinct values."""
    values = telemetry[metric]
    if values.nunique() < 20:
        return False
    steps = values.groupby(telemetry["asset_id"]).diff().dropna()
    return bool(len(steps) > 0 and (steps >= 0).mean() >= 0.99 and (steps > 0).mean() > 0.01)


def _top_components(events: pd.DataFrame, kind: str, limit: int) -> tuple[str, ...]:
    comps = events.loc[(events["kind"] == kind) & (events["component"] != ""), "component"]
    counts = comps.value_counts()
    return tuple(sorted(str(c) for c in counts.index[:limit]))


# --- the frame -------------------------------------------------------------------------------------


def build_features(telemetry: pd.DataFrame, events: pd.DataFrame, spec: FeatureSpec,
                   assets: pd.DataFrame | None = None, *, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """Feature rows indexed by (asset_id, day), columns `spec.names()`.

    `until` (a UTC midnight) extends or cuts every asset's rows to that day. Raises `ConfigError`
    when the telemetry lacks a metric of the spec.
    """
    missing = [m for m in spec.metrics if m not in telemetry.columns]
    if missing:
        raise ConfigError(f"telemetry lacks metric(s) {', '.join(missing)} that the features need")
    grid = _grid(telemetry, until)
    columns: dict[str, FloatArray] = {}
    if len(grid):
        columns |= _telemetry_features(telemetry, grid, spec)
        columns |= _event_features(events, grid, spec)
        columns |= _asset_features(assets, grid, spec)
    index = pd.MultiIndex.from_arrays([grid["asset_id"], grid["day"]], names=["asset_id", "day"])
    frame = pd.DataFrame(columns, index=index)
    return frame.reindex(columns=list(spec.names())).astype("float64")


def features_on(telemetry: pd.DataFrame, events: pd.DataFrame, spec: FeatureSpec, day: pd.Timestamp,
                assets: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of one day (a UTC midnight), indexed by asset_id, from only the telemetry the windows
    need: the same values as `build_features` on the whole history. Assets without telemetry in the
    look-back get no row."""
    end = day + DAY
    start = end - pd.Timedelta(days=spec.lookback_days)
    recent = telemetry[(telemetry["timestamp"] >= start) & (telemetry["timestamp"] < end)]
    rows = build_features(recent, events[events["timestamp"] < end], spec, assets, until=day)
    if len(rows) == 0:
        return rows.droplevel("day")
    return cast(pd.DataFrame, rows.xs(day, level="day"))


def _grid(telemetry: pd.DataFrame, until: pd.Timestamp | None) -> pd.DataFrame:
    """(asset_id, day, pos): every day from an asset's first telemetry day to its last (or `until`)."""
    day = telemetry["timestamp"].dt.floor("D")
    span = day.groupby(telemetry["asset_id"]).agg(["min", "max"])
    if until is not None:
        span = span[span["min"] <= until]
        span["max"] = until
    first = span["min"].to_numpy(dtype="datetime64[ns]")
    lengths = ((span["max"] - span["min"]).dt.days.to_numpy(dtype=np.int64) + 1) if len(span) else np.zeros(0, int)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = np.arange(int(lengths.sum()), dtype=np.int64) - starts
    days = np.repeat(first, lengths) + pos * np.timedelta64(1, "D")
    return pd.DataFrame({"asset_id": np.repeat(span.index.to_numpy(dtype=object), lengths),
                         "day": pd.to_datetime(days, utc=True).astype(TS_DTYPE), "pos": pos})


def _telemetry_features(telemetry: pd.DataFrame, grid: pd.DataFrame, spec: FeatureSpec) -> dict[str, FloatArray]:
    keys = [telemetry["asset_id"], telemetry["timestamp"].dt.floor("D")]
    target = pd.MultiIndex.from_arrays([grid["asset_id"], grid["day"]])
    pos = grid["pos"].to_numpy()
    out: dict[str, FloatArray] = {}
    if spec.gauges:
        out |= _gauge_features(telemetry[list(spec.gauges)], keys, target, pos, spec)
    if spec.counters:
        out |= _counter_features(telemetry[list(spec.counters)], keys, target, pos, spec)
    return out


def _daily(values: pd.DataFrame | pd.Series, keys: list[pd.Series], target: pd.MultiIndex,
           how: str) -> FloatArray:
    grouped = values.groupby(keys).agg(how)
    return np.asarray(grouped.reindex(target).to_numpy(dtype=np.float64), dtype=np.float64)


def _gauge_features(values: pd.DataFrame, keys: list[pd.Series], target: pd.MultiIndex, pos: IntArray,
                    spec: FeatureSpec) -> dict[str, FloatArray]:
    center = values.median().fillna(0.0)
    x = values - center  # centred, so that sums of squares keep their precision
    count = np.nan_to_num(_daily(x, keys, target, "count"))
    total = np.nan_to_num(_daily(x, keys, target, "sum"))
    squares = np.nan_to_num(_daily(x * x, keys, target, "sum"))
    low, high = _daily(x, keys, target, "min"), _daily(x, keys, target, "max")
    offset = center.to_numpy(dtype=np.float64)
    stats: dict[tuple[str, int], FloatArray] = {}
    for w in spec.windows_days:
        n, s, q = (window_sum(a, pos, w) for a in (count, total, squares))
        with np.errstate(invalid="ignore", divide="ignore"):
            stats["mean", w] = np.where(n > 0, s / n, np.nan) + offset
            var = np.where(n > 1, (q - s * s / np.where(n > 0, n, 1)) / (n - 1), np.nan)
        stats["std", w] = np.sqrt(np.clip(var, 0.0, None))
        stats["min", w] = window_reduce(low, pos, w, np.fmin) + offset
        stats["max", w] = window_reduce(high, pos, w, np.fmax) + offset
    slope = _slope(count, total, pos, spec.trend_days)
    short, long = min(spec.windows_days), max(spec.windows_days)
    out: dict[str, FloatArray] = {}
    for j, m in enumerate(spec.gauges):
        for (stat, w), array in stats.items():
            out[f"{m}_{stat}_{w}d"] = array[:, j]
        out[f"{m}_slope_{spec.trend_days}d"] = slope[:, j]
        if short != long:
            out[f"{m}_dev_{short}d_{long}d"] = stats["mean", short][:, j] - stats["mean", long][:, j]
    return out


def _slope(count: FloatArray, total: FloatArray, pos: IntArray, days: int) -> FloatArray:
    """Least-squares slope (per day) of the daily means over the last `days` days; NaN under 3 days of data."""
    has = (count > 0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(count > 0, total / np.where(count > 0, count, 1), 0.0)
    x = pos.astype(np.float64)[:, None] * np.ones_like(y)
    n, sx, sy = window_sum(has, pos, days), window_sum(has * x, pos, days), window_sum(y, pos, days)
    sxy, sxx = window_sum(x * y, pos, days), window_sum(has * x * x, pos, days)
    denom = n * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n >= 3) & (denom > 1e-9), (n * sxy - sx * sy) / denom, np.nan)


def _counter_features(values: pd.DataFrame, keys: list[pd.Series], target: pd.MultiIndex, pos: IntArray,
                      spec: FeatureSpec) -> dict[str, FloatArray]:
    """Increase of each counter over each window: its last value by day D minus its last value before."""
    last = pd.DataFrame(_daily(values, keys, target, "last"))
    asset = target.get_level_values(0)
    held = last.groupby(np.asarray(asset)).ffill().to_numpy(dtype=np.float64)
    first = values.groupby(keys[0]).first().reindex(asset).to_numpy(dtype=np.float64)  # the first reading
    out: dict[str, FloatArray] = {}
    for w in spec.windows_days:
        before = np.full_like(held, np.nan)
        if w < len(held):
            before[w:] = held[:-w]
        before = np.where((pos >= w)[:, None], before, first)
        delta = held - before
        for j, c in enumerate(spec.counters):
            out[f"{c}_delta_{w}d"] = delta[:, j]
    return out


def window_sum(values: FloatArray, pos: IntArray, days: int) -> FloatArray:
    """Sum over the last `days` rows of the same asset (rows are consecutive days; `pos` = day index)."""
    cs = np.cumsum(values, axis=0)
    base = np.arange(len(values)) - np.minimum(pos + 1, days)
    mask = base >= 0
    previous = np.where(mask[:, None] if values.ndim == 2 else mask, cs[np.maximum(base, 0)], 0.0)
    return np.asarray(cs - previous, dtype=np.float64)


def window_reduce(values: FloatArray, pos: IntArray, days: int,
                  fn: Callable[[FloatArray, FloatArray], FloatArray]) -> FloatArray:
    """`fn` (np.fmin / np.fmax: NaN-skipping) over the last `days` rows of the same asset."""
    out = values.copy()
    for lag in range(1, min(days, len(values))):
        shifted = np.full_like(values, np.nan)
        shifted[lag:] = values[:-lag]
        shifted[pos < lag] = np.nan
        out = fn(out, shifted)
    return out


def _event_features(events: pd.DataFrame, grid: pd.DataFrame, spec: FeatureSpec) -> dict[str, FloatArray]:
    ends = grid["day"] + DAY
    asof = _AsOf(grid["asset_id"], ends)
    out: dict[str, FloatArray] = {}
    for kind in EVENT_KINDS:
        of_kind = events[events["kind"] == kind]
        count, since = asof.counts(of_kind, spec.event_windows_days)
        out |= {f"{kind}_count_{w}d": c for w, c in count.items()}
        out[f"days_since_{kind}"] = since
        for comp in spec.components.get(kind, ()):
            count, since = asof.counts(of_kind[of_kind["component"] == comp],
                                       spec.event_windows_days if kind == "error" else ())
            if kind == "error":
                out |= {f"error:{comp}_count_{w}d": c for w, c in count.items()}
            else:
                out[f"days_since_{kind}:{comp}"] = since
    return out


class _AsOf:
    """Counts of an asset's events stamped before given instants (merge_asof on cumulative counts)."""

    def __init__(self, assets: pd.Series, ends: pd.Series) -> None:
        self.assets = assets.to_numpy(dtype=object)
        self.ends = ends.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        self.order = np.argsort(self.ends, kind="stable")

    def counts(self, events: pd.DataFrame, windows: Sequence[int]) -> tuple[dict[int, FloatArray], FloatArray]:
        """Per window w: events in [end - w days, end); and days since the last event before end."""
        ev = events[["timestamp", "asset_id"]].sort_values("timestamp", kind="stable")
        ev = ev.assign(n=ev.groupby("asset_id").cumcount().astype(np.float64) + 1,
                       last=ev["timestamp"].dt.tz_localize(None))
        now_n, last = self._before(ev, self.ends)
        since = (self.ends - last).astype(np.float64) / DAY_NS
        since[np.isnat(last)] = np.nan
        counts = {w: now_n - self._before(ev, self.ends - np.timedelta64(w, "D"))[0] for w in windows}
        return counts, since

    def _before(self, ev: pd.DataFrame, at: npt.NDArray[np.datetime64]) -> tuple[FloatArray, npt.NDArray[Any]]:
        left = pd.DataFrame({"t": pd.to_datetime(at[self.order], utc=True).astype(TS_DTYPE),
                             "asset_id": self.assets[self.order]})
        merged = pd.merge_asof(left, ev, left_on="t", right_on="timestamp", by="asset_id",
                               allow_exact_matches=False, direction="backward")
        n = np.empty(len(left), dtype=np.float64)
        n[self.order] = merged["n"].fillna(0.0).to_numpy(dtype=np.float64)
        last = np.empty(len(left), dtype="datetime64[ns]")
        last[self.order] = merged["last"].to_numpy(dtype="datetime64[ns]")
        return n, last


def _asset_features(assets: pd.DataFrame | None, grid: pd.DataFrame, spec: FeatureSpec) -> dict[str, FloatArray]:
    out: dict[str, FloatArray] = {}
    by_id = None if assets is None else assets.set_index("asset_id")
    if spec.with_age:
        installed = pd.Series(pd.NaT, index=grid.index, dtype=TS_DTYPE)
        if by_id is not None:
            installed = grid["asset_id"].map(by_id["installed"]).astype(TS_DTYPE)
        age = (grid["day"] + DAY - installed).dt.total_seconds() / 86_400
        out["age_days"] = np.asarray(age.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    types = row_types(grid["asset_id"], assets)
    for t in spec.types:
        out[f"type={t}"] = (types == t).astype(np.float64)
    return out


def row_types(asset_ids: pd.Series | pd.Index, assets: pd.DataFrame | None) -> npt.NDArray[np.object_]:
    """The type of each row's asset ("" when unknown), for one-hot columns and per-type models."""
    ids = pd.Series(np.asarray(asset_ids, dtype=object))
    if assets is None:
        return np.full(len(ids), "", dtype=object)
    mapping = assets.set_index("asset_id")["type"]
    return ids.map(mapping).fillna("").astype(str).to_numpy(dtype=object)
