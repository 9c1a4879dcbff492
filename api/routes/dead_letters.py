"""`GET /api/v1/dead-letters`: what fmon refused, and why."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import Engineer, Services

router = APIRouter(prefix="/dead-letters", tags=["ingest"])


@router.get("")
def list_dead_letters(
    services: Services, _: Engineer, reason: str | None = None, device: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = services.dead_letters.recent(limit, reason=reason, device_key=device)
    items = [
        {"id": r.id, "received_at": r.received_at.isoformat().replace("+00:00", "Z"), "topic": r.topic,
         "device": r.device_key, "reason": r.reason, "detail": r.detail, "payload_excerpt": r.payload_excerpt}
        for r in rows
    ]
    return {"items": items, "counts_by_reason": services.dead_letters.counts_by_reason(),
            "top_devices": services.dead_letters.counts_by_device()}
