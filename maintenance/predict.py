"""Failure-risk scoring: what the scheduler and the API consume.

`score(artifact, telemetry, events, at)` builds the feature rows of day `at` for every asset and
returns one `Risk` per asset: the calibrated probability of a failure within the model's horizon,
and the features that pushed it up. Training and evaluation live in `maintenance.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from core.errors import ConfigError
from maintenance.artifact import Artifact, ArtifactError, check_features
from maintenance.features import features_on, row_types


@dataclass(frozen=True, slots=True)
class Risk:
    """The probability that `asset_id` fails within `horizon_days` after the scored day."""

    asset_id: str
    horizon_days: int
    probability: float
    top_features: tuple[tuple[str, float], ...]
    model_version: str


def score(artifact: Artifact, telemetry: pd.DataFrame, events: pd.DataFrame, at: date,
          assets: pd.DataFrame | None = None, *, top: int = 5) -> list[Risk]:
    """Risks of every asset with telemetry in the model's lookback before the end of day `at` (UTC),
    highest first. Uses only data stamped before `at` + 1 day 00:00 UTC.

    Raises `ArtifactError` when the history lacks what the model was trained on.
    """
    try:
        rows = features_on(telemetry, events, artifact.spec, pd.Timestamp(at, tz="UTC"), assets)
    except ConfigError as exc:
        raise ArtifactError(f"model {artifact.version_id}: {exc}") from None
    check_features(artifact, rows.columns)
    if len(rows) == 0:
        return []
    types = list(row_types(rows.index, assets))
    probability = artifact.model.predict(rows, types)
    reasons = artifact.model.explain(rows, types, top)
    risks = [Risk(str(a), artifact.horizon_days, float(p), why, artifact.version_id)
             for a, p, why in zip(rows.index, probability, reasons, strict=True)]
    return sorted(risks, key=lambda r: (-r.probability, r.asset_id))
