"""Failure-risk predictions in the state database: record a model's scores, read the latest.

`record_risks` takes anything shaped like `maintenance.predict.Risk` (the `RiskLike` protocol,
so this module does not depend on the model code) and stores one `EquipmentRisk` row per score.
A risk names its asset either by equipment code (``DT-B1-001``) or by device key
(``site/family/device_id``, what the models use by default); a device key is resolved to the
equipment the device belongs to (ledger link or inventory `equipment_id`). Assets that resolve
to no equipment (or to several) are reported, not stored.

The latest risk of a piece of equipment is the highest probability among the rows of its most
recent scoring time (one scoring run may produce several horizons).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alarms.lifecycle import InvalidRequest
from storage.state.equipment_models import Equipment, EquipmentRisk, equipment_of_device
from storage.state.models import AuditEntry


class RiskLike(Protocol):
    """What `record_risks` reads of a risk (`maintenance.predict.Risk` has these attributes)."""

    @property
    def asset_id(self) -> str: ...
    @property
    def horizon_days(self) -> int: ...
    @property
    def probability(self) -> float: ...
    @property
    def top_features(self) -> Sequence[tuple[str, float]]: ...
    @property
    def model_version(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RecordReport:
    recorded: int
    unresolved: tuple[str, ...]  # asset ids that name no single piece of equipment


def record_risks(session: Session, risks: Iterable[RiskLike], now: datetime, *, actor: str = "system") -> RecordReport:
    """Store scores as of `now` (the scoring time); invalid values raise `InvalidRequest`."""
    recorded, unresolved = 0, []
    codes = set(session.scalars(select(Equipment.id)))
    for risk in risks:
        _check(risk)
        code = resolve_asset(session, risk.asset_id, codes)
        if code is None:
            unresolved.append(risk.asset_id)
            continue
        session.add(EquipmentRisk(
            equipment_id=code, asset_id=risk.asset_id[:200], horizon_days=risk.horizon_days,
            probability=float(risk.probability), top_features=[[str(n), float(v)] for n, v in risk.top_features],
            model_version=risk.model_version[:64], scored_at=now))
        recorded += 1
    session.flush()
    report = RecordReport(recorded, tuple(unresolved))
    session.add(AuditEntry(at=now, actor=actor[:64], action="risk.record", entity_type="equipment_risk",
                           entity_id=str(recorded), reason="", detail={"recorded": recorded,
                                                                      "unresolved": list(unresolved)[:100]}))
    return report


def resolve_asset(session: Session, asset_id: str, codes: set[str]) -> str | None:
    """The equipment code an asset id stands for: itself, or the one equipment of a device key."""
    if asset_id in codes:
        return asset_id
    parts = asset_id.split("/")
    if len(parts) != 3:
        return None
    linked = equipment_of_device(session, *parts)
    return linked[0] if len(linked) == 1 and linked[0] in codes else None


def _check(risk: RiskLike) -> None:
    if not (math.isfinite(risk.probability) and 0.0 <= risk.probability <= 1.0):
        raise InvalidRequest(f"risk of {risk.asset_id}: probability {risk.probability} is outside 0..1")
    if not 1 <= risk.horizon_days <= 3650:
        raise InvalidRequest(f"risk of {risk.asset_id}: horizon_days {risk.horizon_days} is outside 1..3650")


def latest_risks(session: Session, codes: Sequence[str] | None = None) -> dict[str, EquipmentRisk]:
    """The latest risk of each piece of equipment (of `codes`, or all) that has one."""
    newest = select(EquipmentRisk.equipment_id, func.max(EquipmentRisk.scored_at).label("at")) \
        .group_by(EquipmentRisk.equipment_id)
    if codes is not None:
        newest = newest.where(EquipmentRisk.equipment_id.in_(codes))
    sub = newest.subquery()
    query = select(EquipmentRisk).join(sub, (EquipmentRisk.equipment_id == sub.c.equipment_id)
                                       & (EquipmentRisk.scored_at == sub.c.at))
    latest: dict[str, EquipmentRisk] = {}
    for row in session.scalars(query.order_by(EquipmentRisk.probability.desc(), EquipmentRisk.horizon_days)):
        latest.setdefault(row.equipment_id, row)
    return latest


def risk_view(risk: EquipmentRisk | None) -> dict[str, Any] | None:
    if risk is None:
        return None
    return {"id": risk.id, "probability": risk.probability, "horizon_days": risk.horizon_days,
            "top_features": risk.top_features, "model_version": risk.model_version,
            "scored_at": risk.scored_at.isoformat().replace("+00:00", "Z"), "asset_id": risk.asset_id}
