"""Devices and their telemetry history: what engineers look at before they judge equipment health.

`GET /api/v1/devices` lists the registry; `GET /api/v1/telemetry/{site}/{family}/{device_id}/
{metric}` returns one numeric metric over a window, downsampled in the telemetry store to about
`points` buckets (mean, min and max of each, so a spike survives the downsampling); `…/events`
returns a device's stored events. Times are UTC with an offset; the window defaults to the last
24 hours and may span at most 400 days.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import Services, Viewer
from api.params import Instant
from core.domain import DeviceRef, Family, device_ref
from core.errors import StorageError, StoreUnavailable
from core.schema import metric_spec
from storage.telemetry import TelemetryStore, history_step

router = APIRouter(tags=["telemetry"])
DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=400)
MAX_EVENTS = 5000
T = TypeVar("T")


@router.get("/devices")
def list_devices(services: Services, _: Viewer, site: str | None = None, family: Family | None = None,
                 building: str | None = None, zone: str | None = None) -> dict[str, Any]:
    devices = [d for d in services.registry.devices(site)
               if (family is None or d.family is family) and (building is None or d.building_id == building)
               and (zone is None or d.zone_id == zone)]
    return {"items": [{"site": d.site, "family": d.family.value, "device_id": d.device_id, "kind": d.kind,
                       "building": d.building_id, "zone": d.zone_id, "gateway": d.gateway_id,
                       "equipment_id": d.equipment_id, "name_zh": d.name_zh, "name_en": d.name_en,
                       "report_interval_s": d.report_interval_s} for d in devices]}


@router.get("/telemetry/{site}/{family}/{device_id}/events")
def device_events(services: Services, _: Viewer, site: str, family: Family, device_id: str,
                  start: Annotated[Instant | None, Query(alias="from")] = None,
                  end: Annotated[Instant | None, Query(alias="to")] = None) -> dict[str, Any]:
    device = _device(site, family, device_id)
    window_start, window_end = _window(services.clock.now(), start, end)
    events = _read(lambda store: store.events(device, window_start, window_end), services.telemetry)
    return {"device": device.key, "from": _iso(window_start), "to": _iso(window_end),
            "truncated": len(events) > MAX_EVENTS,
            "items": [{"ts": _iso(e.ts), "code": e.code, "attrs": dict(e.attrs), "seq": e.seq,
                       "historical": e.historical} for e in events[:MAX_EVENTS]]}


@router.get("/telemetry/{site}/{family}/{device_id}/{metric}")
def metric_history(services: Services, _: Viewer, site: str, family: Family, device_id: str, metric: str,
                   start: Annotated[Instant | None, Query(alias="from")] = None,
                   end: Annotated[Instant | None, Query(alias="to")] = None,
                   points: Annotated[int, Query(ge=10, le=5000)] = 500) -> dict[str, Any]:
    device = _device(site, family, device_id)
    spec = metric_spec(family, metric)
    if spec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{family.value} has no metric {metric!r}")
    if spec.type not in ("number", "integer"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"{metric} is a {spec.type} metric: only numeric metrics have a history chart")
    window_start, window_end = _window(services.clock.now(), start, end)
    step = history_step(window_start, window_end, points)
    buckets = _read(lambda store: store.history(device, metric, window_start, window_end, step), services.telemetry)
    return {"device": device.key, "metric": metric, "unit": spec.unit, "from": _iso(window_start),
            "to": _iso(window_end), "step_s": int(step.total_seconds()),
            "buckets": [{"ts": _iso(b.start), "mean": b.mean, "min": b.low, "max": b.high, "count": b.count}
                        for b in buckets]}


def _device(site: str, family: Family, device_id: str) -> DeviceRef:
    try:
        return device_ref(site, family.value, device_id)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


def _window(now: datetime, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or now
    start = start or end - DEFAULT_WINDOW
    if start >= end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "'from' must be before 'to'")
    if end - start > MAX_WINDOW:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"the window may span at most {MAX_WINDOW.days} days")
    return start, end


def _read(query: Callable[[TelemetryStore], T], store: TelemetryStore | None) -> T:
    if store is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this API process has no telemetry store configured")
    try:
        result = query(store)
    except StoreUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"telemetry store unavailable: {exc}") from None
    except StorageError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"telemetry store error: {exc}") from None
    return result


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")
