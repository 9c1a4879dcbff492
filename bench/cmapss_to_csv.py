"""Convert NASA C-MAPSS FD001 to fmon's bring-your-own history CSVs (docs/equipment-health.md).

Reads `cmapss/{train,test}_FD001.txt` and `RUL_FD001.txt` in place and writes, to `--out`
(a directory outside the repository; default: a new temporary directory):

- `train_telemetry.csv`, `train_events.csv`, `train_assets.csv`: the 100 training engines, run
  to failure; one `failure` event per engine (component `engine`) at 23:00 of its last cycle's day;
- `test_telemetry.csv`, `test_events.csv` (header only), `test_assets.csv`: the 100 test engines,
  cut before failure;
- `test_rul.csv`: `asset_id,rul_cycles`, the true remaining cycles after each test engine's last
  cycle (RUL_FD001.txt).

Time mapping: one operating cycle is one day, read at 00:00 UTC. A fleet does not start on one
day, so engine u's first cycle is on 2000-01-01 + (u - 1) × `--stagger` days (default 10, which keeps
about 15 engines in service at a time). Assets files give each engine's first cycle as `installed`,
so that "age" is the cycle count, which operators know. Telemetry columns: `setting1-3`, `s1-s21`.

    .venv/bin/python -m bench.cmapss_to_csv [--out DIR] [--stagger 10]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from bench.pdm_common import data_dir

COLUMNS = ["unit", "cycle", "setting1", "setting2", "setting3", *(f"s{i}" for i in range(1, 22))]
EPOCH = pd.Timestamp("2000-01-01", tz="UTC")


def read_cmapss(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=r"\s+", header=None, names=COLUMNS)


def to_telemetry(raw: pd.DataFrame, prefix: str, stagger_days: int) -> pd.DataFrame:
    start = EPOCH + pd.to_timedelta((raw["unit"] - 1) * stagger_days, unit="D")
    timestamp = start + pd.to_timedelta(raw["cycle"] - 1, unit="D")
    out = raw.drop(columns=["unit", "cycle"])
    out.insert(0, "asset_id", asset_ids(raw["unit"], prefix))
    out.insert(0, "timestamp", timestamp)
    return out


def asset_ids(units: pd.Series, prefix: str) -> pd.Series:
    return prefix + "-" + units.astype(int).map("{:03d}".format)


def failures(telemetry: pd.DataFrame) -> pd.DataFrame:
    """A failure at 23:00 of each engine's last cycle day: after its last reading, before the next midnight."""
    last = telemetry.groupby("asset_id")["timestamp"].max()
    return pd.DataFrame({"timestamp": last + pd.Timedelta(hours=23), "asset_id": last.index, "kind": "failure",
                         "component": "engine"})


def assets(telemetry: pd.DataFrame) -> pd.DataFrame:
    first = telemetry.groupby("asset_id")["timestamp"].min()
    return pd.DataFrame({"asset_id": first.index, "type": "turbofan", "installed": first.to_numpy()})


def convert(source: Path, out: Path, stagger_days: int = 10) -> dict[str, Path]:
    """Write the CSVs; return their paths by name."""
    out.mkdir(parents=True, exist_ok=True)
    train = to_telemetry(read_cmapss(source / "train_FD001.txt"), "train", stagger_days)
    test_raw = read_cmapss(source / "test_FD001.txt")
    test = to_telemetry(test_raw, "test", stagger_days)
    rul = pd.read_csv(source / "RUL_FD001.txt", header=None, names=["rul_cycles"], sep=r"\s+")
    rul.insert(0, "asset_id", asset_ids(pd.Series(range(1, len(rul) + 1)), "test"))
    frames = {
        "train_telemetry": train, "train_events": failures(train), "train_assets": assets(train),
        "test_telemetry": test, "test_events": failures(test).iloc[0:0], "test_assets": assets(test),
        "test_rul": rul,
    }
    paths = {}
    for name, frame in frames.items():
        paths[name] = out / f"{name}.csv"
        iso = {c: frame[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ") for c in ("timestamp", "installed") if c in frame}
        frame.assign(**iso).to_csv(paths[name], index=False)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output directory (default: a new temporary directory)")
    parser.add_argument("--stagger", type=int, default=10, help="days between engines' first cycles")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="cmapss-byo-"))
    if Path(__file__).resolve().parent.parent in out.resolve().parents:
        raise SystemExit("write the converted data outside the repository")
    for name, path in convert(data_dir() / "cmapss", out, args.stagger).items():
        print(f"{name:<16} {path}")


if __name__ == "__main__":
    main()
