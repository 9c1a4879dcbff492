"""Alarm-load KPIs (ISA-18.2 / EEMUA 191) over a period; read-only, viewer role."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from alarms.kpis import MAX_POSITIONS, KpiWindow, alarm_kpis
from api.deps import Services, Viewer

router = APIRouter(prefix="/kpis", tags=["kpis"])


@router.get("/alarms")
def alarm_load(
    services: Services,
    _: Viewer,
    start: Annotated[datetime | None, Query(alias="from", description="default: to - 24 h")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="default: now")] = None,
    site: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    positions: Annotated[int, Query(ge=1, le=MAX_POSITIONS, description="staffed operator positions")] = 1,
) -> dict[str, Any]:
    """Alarm rates per operator position, flood, top contributors, chattering and stale alarms,
    with the ISA-18.2 and EEMUA 191 figures to compare against. Periods of at most 90 days."""
    window = KpiWindow.checked(start, end, services.clock.now(), positions, site)
    with services.db.session() as session:
        return alarm_kpis(session, window)
