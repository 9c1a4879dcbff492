"""Shared by the predictive-maintenance benches (bench/pdm_*.py): where the public data sets are,
running the evaluation protocol with a printed table, and writing results JSON to bench/results/.

The data sets are read in place (../shared/data/pdm, or $FMON_PDM_DATA); nothing is copied.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from maintenance.evaluate import EvalConfig, evaluate, summary_table
from maintenance.features import FeatureSpec

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pdm"


def data_dir() -> Path:
    path = Path(os.environ.get("FMON_PDM_DATA", DEFAULT_DATA))
    if not path.is_dir():
        raise SystemExit(f"no PdM data at {path} (set FMON_PDM_DATA)")
    return path


def run_protocol(label: str, telemetry: pd.DataFrame, events: pd.DataFrame, assets: pd.DataFrame | None,
                 config: EvalConfig, spec: FeatureSpec | None = None) -> dict[str, Any]:
    """Evaluate, print the table under `label`, return the report (with its run time)."""
    started = time.perf_counter()
    report = evaluate(telemetry, events, assets, config, spec)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\n== {label} ({report['seconds']} s, {report['n_features']} features, "
          f"{report['n_test_rows']} test rows, positive rate {report['test_positive_rate']:.3f})")
    for line in summary_table(report):
        print(line)
    return report


def write_results(name: str, payload: dict[str, Any]) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}-{stamp}.json"
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()}
    out.write_text(json.dumps({"machine": machine, **payload}, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwritten {out.relative_to(RESULTS.parent.parent)}")
    return out
