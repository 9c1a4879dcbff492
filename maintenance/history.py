"""Equipment history as failure models read it: telemetry, events and (optionally) assets.

Three frames, whatever the source (docs/equipment-health.md, "Bring your own history"):

- **telemetry**: `timestamp` (UTC), `asset_id` (str), then one float column per metric;
  one row per asset and time, NaN where a metric was not reported;
- **events**: `timestamp`, `asset_id`, `kind` (failure | maintenance | error), `component`
  (`""` when not known);
- **assets** (optional): `asset_id`, `type` (None when not known), `installed` (UTC, NaT when
  not known).

Sources: CSV files (`load_telemetry_csv`, `load_events_csv`, `load_assets_csv`), which report the
first bad value by file and line; fmon's own telemetry store (`telemetry_from_store`), its alarms
as errors (`error_events_from_alarms`) and the simulated backfill log (`events_from_backfill_log`);
any iterable of `EventRecord`s (the ledger's failures and work orders).
Every path returns the same frames, so the feature code is the same. Features are built in
`maintenance.features`, not here.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, Protocol

import numpy as np
import pandas as pd

from core.domain import DeviceRef, Family, Reading
from core.errors import ConfigError

EventKind = Literal["failure", "maintenance", "error"]
EVENT_KINDS: Final = ("failure", "maintenance", "error")
TELEMETRY_KEYS: Final = ("timestamp", "asset_id")
EVENT_COLUMNS: Final = ("timestamp", "asset_id", "kind", "component")
ASSET_COLUMNS: Final = ("asset_id", "type", "installed")
TS_DTYPE: Final = "datetime64[ns, UTC]"

AssetOf = Callable[[DeviceRef], str | None]


class HistoryError(ConfigError):
    """A history file that cannot be used; `line` is the 1-based line of the first problem (None: whole file)."""

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One failure, maintenance or error of one asset (for `events_frame`)."""

    ts: datetime
    asset_id: str
    kind: EventKind
    component: str = ""


class ReadingSource(Protocol):
    """What `telemetry_from_store` needs of a telemetry store (`storage.telemetry.TelemetryStore` has it)."""

    def scan(self, start: datetime, end: datetime, *, site: str | None = None) -> Iterator[Reading]: ...


# --- CSV files ---------------------------------------------------------------------------------


def load_telemetry_csv(path: Path) -> pd.DataFrame:
    """Read `timestamp,asset_id,<metric…>`; metrics must be numbers (empty = missing)."""
    raw = _read_csv(path, TELEMETRY_KEYS)
    metrics = [c for c in raw.columns if c not in TELEMETRY_KEYS and c != "_line"]
    if not metrics:
        raise HistoryError(path, 1, "no metric columns after timestamp,asset_id")
    frame = pd.DataFrame({"timestamp": _timestamps(raw, path), "asset_id": _asset_ids(raw, path)})
    for name in metrics:
        frame[name] = _numbers(raw, name, path)
    return normalize_telemetry(frame)


def load_events_csv(path: Path) -> pd.DataFrame:
    """Read `timestamp,asset_id,kind,component`; `component` may be empty or absent."""
    raw = _read_csv(path, ("timestamp", "asset_id", "kind"))
    kinds = raw["kind"].fillna("").astype(str).str.strip().str.lower()
    bad = ~kinds.isin(EVENT_KINDS)
    if bad.any():
        line, value = _first(raw, bad, "kind")
        raise HistoryError(path, line, f"unknown kind {value!r} (expected one of {', '.join(EVENT_KINDS)})")
    component = raw["component"] if "component" in raw.columns else pd.Series("", index=raw.index)
    frame = pd.DataFrame({
        "timestamp": _timestamps(raw, path), "asset_id": _asset_ids(raw, path),
        "kind": kinds, "component": component.fillna("").astype(str).str.strip(),
    })
    return normalize_events(frame)


def load_assets_csv(path: Path) -> pd.DataFrame:
    """Read `asset_id[,type][,installed]` (installed: an ISO-8601 date or time)."""
    raw = _read_csv(path, ("asset_id",))
    frame = pd.DataFrame({"asset_id": _asset_ids(raw, path)})
    frame["type"] = raw["type"].astype("string").str.strip() if "type" in raw.columns else None
    if "installed" in raw.columns:
        present = raw["installed"].notna()
        parsed = pd.to_datetime(raw["installed"], utc=True, format="ISO8601", errors="coerce")
        if (present & parsed.isna()).any():
            line, value = _first(raw, present & parsed.isna(), "installed")
            raise HistoryError(path, line, f"bad installed date {value!r} (expected ISO-8601, e.g. 2014-06-01)")
        frame["installed"] = parsed
    if frame["asset_id"].duplicated().any():
        line, value = _first(raw, frame["asset_id"].duplicated(), "asset_id")
        raise HistoryError(path, line, f"asset {value!r} listed twice")
    return normalize_assets(frame)


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """All columns as text, with `_line` = the file line of each row (blank lines kept for numbering)."""
    try:
        raw = pd.read_csv(path, dtype=str, skip_blank_lines=False, skipinitialspace=True)
    except FileNotFoundError:
        raise HistoryError(path, None, "no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise HistoryError(path, None, f"not a readable CSV file ({str(exc).strip()})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in required if c not in raw.columns]
    if missing:
        header = ", ".join(raw.columns)
        raise HistoryError(path, 1, f"missing column(s) {', '.join(missing)} (the header has: {header})")
    raw["_line"] = np.arange(len(raw)) + 2
    return raw[raw.drop(columns="_line").notna().any(axis=1)].reset_index(drop=True)


def _first(raw: pd.DataFrame, mask: pd.Series, column: str) -> tuple[int, str]:
    row = raw[mask.to_numpy()].iloc[0]
    return int(row["_line"]), "" if pd.isna(row[column]) else str(row[column])


def _timestamps(raw: pd.DataFrame, path: Path) -> pd.Series:
    """ISO-8601 with or without an offset; without one it is taken as UTC."""
    parsed = pd.to_datetime(raw["timestamp"], utc=True, format="ISO8601", errors="coerce")
    if parsed.isna().any():
        line, value = _first(raw, parsed.isna(), "timestamp")
        raise HistoryError(path, line, f"bad timestamp {value!r} (expected ISO-8601, e.g. 2015-01-01T06:00:00Z)")
    return parsed


def _asset_ids(raw: pd.DataFrame, path: Path) -> pd.Series:
    ids = raw["asset_id"].fillna("").astype(str).str.strip()
    if (ids == "").any():
        line, _ = _first(raw, ids == "", "asset_id")
        raise HistoryError(path, line, "empty asset_id")
    return ids


def _numbers(raw: pd.DataFrame, column: str, path: Path) -> pd.Series:
    text = raw[column].str.strip()
    values = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = (text.notna() & (text != "") & values.isna()) | np.isinf(values)
    if bad.any():
        line, value = _first(raw, bad, column)
        raise HistoryError(path, line, f"{column}: {value!r} is not a finite number")
    return values


# --- normalized frames -------------------------------------------------------------------------


def normalize_telemetry(frame: pd.DataFrame) -> pd.DataFrame:
    """The telemetry frame contract: UTC timestamps, str asset ids, float metrics, sorted."""
    out = frame.copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).astype(TS_DTYPE)
    out["asset_id"] = out["asset_id"].astype(str)
    for name in (c for c in out.columns if c not in TELEMETRY_KEYS):
        out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64")
    return out.sort_values(["asset_id", "timestamp"], kind="stable").reset_index(drop=True)


def normalize_events(frame: pd.DataFrame) -> pd.DataFrame:
    """The events frame contract; raises `ConfigError` on an unknown kind."""
    out = pd.DataFrame({
        "timestamp": pd.to_datetime(frame["timestamp"], utc=True).astype(TS_DTYPE),
        "asset_id": frame["asset_id"].astype(str),
        "kind": frame["kind"].astype(str),
        "component": frame["component"].fillna("").astype(str) if "component" in frame else "",
    })
    unknown = sorted(set(out["kind"]) - set(EVENT_KINDS))
    if unknown:
        raise ConfigError(f"unknown event kind(s) {', '.join(unknown)} (expected one of {', '.join(EVENT_KINDS)})")
    return out.sort_values(["timestamp", "asset_id"], kind="stable").reset_index(drop=True)


def normalize_assets(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"asset_id": frame["asset_id"].astype(str)})
    types = frame["type"] if "type" in frame else pd.Series(None, index=frame.index, dtype="object")
    out["type"] = types.astype("object").where(types.notna(), None)
    installed = frame["installed"] if "installed" in frame else pd.Series(pd.NaT, index=frame.index)
    out["installed"] = pd.to_datetime(installed, utc=True).astype(TS_DTYPE)
    return out.reset_index(drop=True)


def empty_events() -> pd.DataFrame:
    return normalize_events(pd.DataFrame({c: pd.Series([], dtype="object") for c in EVENT_COLUMNS}))


def events_frame(records: Iterable[EventRecord]) -> pd.DataFrame:
    """Events from records, e.g. the ledger's failures and work orders, or alarms as errors."""
    rows = [(r.ts, r.asset_id, r.kind, r.component) for r in records]
    if not rows:
        return empty_events()
    return normalize_events(pd.DataFrame(rows, columns=list(EVENT_COLUMNS)))


# --- fmon's own data -----------------------------------------------------------------------------


def device_asset(device: DeviceRef) -> str:
    """The default asset id of a device: its key, `site/family/device_id`."""
    return device.key


def telemetry_from_readings(readings: Iterable[Reading], *, asset_of: AssetOf = device_asset,
                            metrics: Collection[str] | None = None) -> pd.DataFrame:
    """One row per reading: numeric and boolean metrics (as 0/1); text metrics are left out.

    `asset_of` maps a device to its asset id (None: not an asset, skipped); `metrics` keeps only
    those metrics (default: all numeric ones).
    """
    rows: list[dict[str, object]] = []
    for reading in readings:
        asset = asset_of(reading.device)
        if asset is None:
            continue
        row: dict[str, object] = {"timestamp": reading.ts, "asset_id": asset}
        for name, value in reading.metrics.items():
            if isinstance(value, bool | int | float) and (metrics is None or name in metrics):
                row[name] = float(value)
        rows.append(row)
    if not rows:
        return normalize_telemetry(pd.DataFrame({"timestamp": pd.Series([], dtype=TS_DTYPE), "asset_id": []}))
    return normalize_telemetry(pd.DataFrame(rows))


def telemetry_from_store(store: ReadingSource, start: datetime, end: datetime, *, site: str | None = None,
                         devices: Collection[DeviceRef] | None = None, metrics: Collection[str] | None = None,
                         asset_of: AssetOf = device_asset) -> pd.DataFrame:
    """The telemetry frame of stored readings in [start, end) (of `devices`, if given)."""
    wanted = None if devices is None else frozenset(devices)

    def chosen(device: DeviceRef) -> str | None:
        return asset_of(device) if wanted is None or device in wanted else None

    return telemetry_from_readings(store.scan(start, end, site=site), asset_of=chosen, metrics=metrics)


def assets_from_devices(devices: Iterable[DeviceRef], *, asset_of: AssetOf = device_asset) -> pd.DataFrame:
    """An assets frame whose type is the device family (one model per family when there is data enough)."""
    rows = [(a, d.family.value) for d in devices if (a := asset_of(d)) is not None]
    return normalize_assets(pd.DataFrame(rows, columns=["asset_id", "type"]))


class AlarmLike(Protocol):
    """What `error_events_from_alarms` reads of an alarm (`storage.state.models.Alarm` has it)."""

    site: str
    family: str
    device_id: str
    rule_id: str
    raised_at: datetime


def error_events_from_alarms(alarms: Iterable[AlarmLike], *, asset_of: AssetOf = device_asset) -> pd.DataFrame:
    """fmon's own alarms as `error` events of their device's asset, the rule id as the component."""
    records = []
    for alarm in alarms:
        asset = asset_of(DeviceRef(alarm.site, Family(alarm.family), alarm.device_id))
        if asset is not None:
            raised = alarm.raised_at if alarm.raised_at.tzinfo else alarm.raised_at.replace(tzinfo=UTC)
            records.append(EventRecord(raised, asset, "error", alarm.rule_id))
    return events_frame(records)


BACKFILL_KINDS: Final[dict[str, EventKind]] = {"maintenance": "maintenance", "failure": "failure",
                                                "repair": "maintenance"}


def events_from_backfill_log(path: Path) -> pd.DataFrame:
    """Events from the simulator's maintenance log (`fmon simulate backfill`).

    Maintenance and failures keep their kind; a repair is a maintenance of component `repair`.
    `degradation_start` is left out: in real life nobody writes down when wear began.
    """
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise HistoryError(path, None, "no such file") from None
    records = []
    for line, row in enumerate(rows, start=2):
        kind = BACKFILL_KINDS.get(row.get("kind") or "")
        if kind is None:
            continue
        try:
            ts = datetime.fromisoformat(row["ts"])
            asset = DeviceRef(row["site"], Family(row["family"]), row["device_id"]).key
        except (KeyError, ValueError) as exc:
            raise HistoryError(path, line, f"bad backfill log row ({exc})") from None
        records.append(EventRecord(ts, asset, kind, "repair" if row["kind"] == "repair" else ""))
    return events_frame(records)
