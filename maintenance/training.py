"""Training the failure model that fmon deploys: every labelled row of a history, one `Artifact`.

The evaluation (`maintenance.evaluate`) answers "how good is this?"; this module fits the model
that scores tomorrow, on all the history, with the explanations' statistics. Its metrics come from
an evaluation run handed in (or none).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ConfigError
from maintenance.artifact import Artifact, fmon_version, version_id
from maintenance.evaluate import make_dataset
from maintenance.features import FeatureSpec, infer_spec
from maintenance.models import ModelConfig, fit_failure_model

EPOCH = date(1970, 1, 1)


def train(telemetry: pd.DataFrame, events: pd.DataFrame, assets: pd.DataFrame | None, horizon_days: int, *,
          now: datetime, config: ModelConfig | None = None, spec: FeatureSpec | None = None,
          metrics: Mapping[str, Any] | None = None) -> Artifact:
    """Fit on every labelled row; `now` (UTC) stamps the artifact."""
    config = config or ModelConfig()
    spec = spec or infer_spec(telemetry, events, assets)
    data = make_dataset(telemetry, events, assets, spec, horizon_days)
    rows = data.rows(np.ones(len(data.y), dtype=bool))
    if rows.positives == 0:
        raise ConfigError("no failure falls inside the labelled history: nothing to learn from")
    model = fit_failure_model(rows, horizon_days, config, explain=True)
    names = spec.names()
    training = {"rows": len(rows.y), "positive_rows": rows.positives, "assets": len(np.unique(data.asset)),
                "failure_events": len(data.failures), "calibration": model.calibration,
                "types_with_own_model": sorted(k for k in model.boosters if k != "*")}
    return Artifact(model=model, spec=spec, horizon_days=horizon_days,
                    train_start=_date(int(data.day.min())), train_end=_date(int(data.day.max())),
                    created_at=now, version_id=version_id(now, names, horizon_days), fmon_version=fmon_version(),
                    metrics=dict(metrics or {}), training=training)


def _date(day: int) -> date:
    return EPOCH + timedelta(days=day)
