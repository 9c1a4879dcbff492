"""fmon's errors as HTTP answers: a clear 4xx naming what was wrong, never a 5xx for bad input."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import StatementError

from alarms.lifecycle import InvalidRequest
from core.errors import AuthError, ConfigError, Conflict, FmonError, NotFound, PermissionDenied

STATUS: list[tuple[type[FmonError], int]] = [
    (NotFound, 404), (Conflict, 409), (InvalidRequest, 422), (ConfigError, 422),
    (PermissionDenied, 403), (AuthError, 401),
]


def install(app: FastAPI) -> None:
    for kind, code in STATUS:
        app.add_exception_handler(kind, _handler(code))
    app.add_exception_handler(StatementError, _unstorable)


async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
    """Backstop: a value the database driver refused to bind (naive time, int out of range) is the
    request's fault. Parameters are validated before this (api.params); other database errors stay 5xx."""
    orig = getattr(exc, "orig", None)
    if isinstance(orig, ValueError | OverflowError):
        return JSONResponse({"detail": f"{request.url.path}: a value is out of range: {orig}"}, status_code=422)
    raise exc


def _handler(code: int):  # type: ignore[no-untyped-def]
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handle
