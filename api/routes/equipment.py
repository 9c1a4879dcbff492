"""Equipment ledger routes: equipment with health and risk, work orders, the maintenance schedule."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["equipment"])
