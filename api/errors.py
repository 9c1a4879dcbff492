"""fmon's errors as HTTP answers: a clear 4xx naming what was wrong, never a 5xx for bad input."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from alarms.lifecycle import InvalidRequest
from core.errors import AuthError, ConfigError, Conflict, FmonError, NotFound, PermissionDenied

STATUS: list[tuple[type[FmonError], int]] = [
    (NotFound, 404), (Conflict, 409), (InvalidRequest, 422), (ConfigError, 422),
    (PermissionDenied, 403), (AuthError, 401),
]


def install(app: FastAPI) -> None:
    for kind, code in STATUS:
        app.add_exception_handler(kind, _handler(code))


def _handler(code: int):  # type: ignore[no-untyped-def]
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handle
