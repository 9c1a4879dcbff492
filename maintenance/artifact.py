"""Trained failure models on disk: the pickled `Artifact` (joblib) and a JSON sidecar beside it.

The sidecar (`<model file>.json`) carries what people and other tools need without unpickling:
the version id, feature names, horizon, training window, metrics, fmon version and creation time.
`load` refuses a model whose sidecar does not match it, a format it does not know, or a file that
is not an fmon artifact; `check_features` refuses feature columns the model was not trained on.
A joblib file is a pickle: load only models you (or your fmon) wrote.

Training is in `maintenance.training`; scoring in `maintenance.predict`.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import joblib  # type: ignore[import-untyped]

from core.errors import ConfigError
from maintenance.features import FeatureSpec
from maintenance.models import FailureModel

FORMAT: Final = 1


class ArtifactError(ConfigError):
    """A model file that cannot be used (missing, foreign, damaged, or for other features)."""


@dataclass(frozen=True, slots=True)
class Artifact:
    model: FailureModel
    spec: FeatureSpec
    horizon_days: int
    train_start: date
    train_end: date
    created_at: datetime
    version_id: str
    fmon_version: str
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # rows, positives, events, assets, calibration

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.model.feature_names

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version_id": self.version_id, "fmon_version": self.fmon_version,
            "created_at": self.created_at.isoformat(timespec="seconds"), "horizon_days": self.horizon_days,
            "train_start": self.train_start.isoformat(), "train_end": self.train_end.isoformat(),
            "feature_names": list(self.feature_names), "feature_spec": self.spec.to_dict(),
            "calibration": self.model.calibration, "training": self.training, "metrics": self.metrics,
        }


def fmon_version() -> str:
    try:
        return metadata.version("fmon")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def version_id(created_at: datetime, feature_names: Iterable[str], horizon_days: int) -> str:
    """`<UTC creation time>-<hash of features and horizon>`, e.g. 20260301T020000Z-7d-3f2a9c1b."""
    digest = hashlib.sha256("\n".join([str(horizon_days), *feature_names]).encode()).hexdigest()[:8]
    return f"{created_at:%Y%m%dT%H%M%SZ}-{horizon_days}d-{digest}"


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def save(artifact: Artifact, path: Path) -> Path:
    """Write the model and its sidecar; return the sidecar's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(artifact, path, compress=3)
    sidecar = sidecar_path(path)
    sidecar.write_text(json.dumps(artifact.metadata(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return sidecar


def load(path: Path) -> Artifact:
    """Read a model saved by `save`, checking it against its sidecar."""
    if not path.is_file():
        raise ArtifactError(f"{path}: no such model file")
    meta = _sidecar(path)
    try:
        artifact = joblib.load(path)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{path}: not a readable fmon model ({type(exc).__name__}: {exc})") from None
    if not isinstance(artifact, Artifact):
        raise ArtifactError(f"{path}: not an fmon failure model (found {type(artifact).__name__})")
    if meta.get("version_id") != artifact.version_id:
        raise ArtifactError(f"{path}: the sidecar describes model {meta.get('version_id')}, "
                            f"the file holds {artifact.version_id}")
    _check_names(path, artifact, list(meta.get("feature_names", [])))
    return artifact


def _sidecar(path: Path) -> dict[str, Any]:
    sidecar = sidecar_path(path)
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: its sidecar {sidecar.name} is missing") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{sidecar}: not JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ArtifactError(f"{sidecar}: model format {found!r}, this fmon reads format {FORMAT}")
    return meta


def _check_names(path: Path, artifact: Artifact, sidecar_names: list[str]) -> None:
    names = list(artifact.feature_names)
    if names != list(artifact.spec.names()):
        raise ArtifactError(f"{path}: the model's feature spec does not produce its feature names")
    if sidecar_names != names:
        check_features(artifact, sidecar_names, what=f"{sidecar_path(path).name} lists features; ")
    for key, booster in artifact.model.boosters.items():
        if booster.booster.n_features_in_ != len(names):
            raise ArtifactError(f"{path}: booster {key!r} expects {booster.booster.n_features_in_} features, "
                                f"the model lists {len(names)}")


def check_features(artifact: Artifact, columns: Iterable[str], *, what: str = "") -> None:
    """Raise `ArtifactError` unless `columns` are exactly the model's features, in order."""
    given, expected = list(columns), list(artifact.feature_names)
    if given == expected:
        return
    missing = [c for c in expected if c not in set(given)]
    extra = [c for c in given if c not in set(expected)]
    detail = "; ".join(part for part in (
        f"missing {_few(missing)}" if missing else "", f"unknown {_few(extra)}" if extra else "",
        "same features in another order" if not missing and not extra else "") if part)
    raise ArtifactError(f"{what}features do not match model {artifact.version_id}: {detail}")


def _few(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
