"""`WS /api/v1/stream?token=…`: pushes alarm events as they are committed.

Browsers cannot set headers on a WebSocket, so the bearer token comes as a query parameter.
Close codes the console acts on:

- 4401 at the start: a bad or expired token, or a user who is disabled or gone;
- 1008 (policy violation) later: the token expired or the user was disabled or removed while
  connected. The console reconnects at once with its renewed token; without one, that
  reconnection is refused with 4401 and the operator signs in again;
- 1012 (service restart) on server shutdown; the console reconnects and re-reads the lists.

Expiry is checked before every message and on the hub's periodic `revalidate` tick, which also
re-reads the user (runtime/api_process.py sends it every `STREAM_RECHECK_S` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy.exc import SQLAlchemyError

from api.deps import ApiServices
from api.hub import REVALIDATE, Message
from api.security import Grant
from core.errors import AuthError

router = APIRouter()
log = logging.getLogger(__name__)
CLOSE_UNAUTHORIZED = 4401
CLOSE_POLICY_VIOLATION = 1008
CLOSE_SERVICE_RESTART = 1012


@router.websocket("/stream")
async def stream(websocket: WebSocket, token: str = "") -> None:
    services: ApiServices = websocket.app.state.services
    await websocket.accept()  # accept first: a close before accept reaches browsers as 1006
    try:
        grant = services.tokens.grant(token, services.clock.now())
    except AuthError as exc:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason=str(exc)[:100])
        return
    if not await asyncio.to_thread(_user_active, services, grant.principal.username):
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason="user no longer active")
        return
    queue = services.hub.subscribe()
    # The client sends nothing; reading anyway is how a disconnect is noticed while idle.
    listener = asyncio.create_task(_until_disconnect(websocket))
    try:
        await websocket.send_json({"type": "hello"})
        await _forward(websocket, queue, listener, _Access(services, grant))
    except WebSocketDisconnect:
        pass
    finally:
        listener.cancel()
        services.hub.unsubscribe(queue)


class _Access:
    """Whether this connection may still listen; the reason to close it when not."""

    def __init__(self, services: ApiServices, grant: Grant) -> None:
        self._services, self._grant = services, grant

    def expired(self) -> str | None:
        return "token expired" if self._grant.expired(self._services.clock.now()) else None

    async def revoked(self) -> str | None:
        """Expired, or the user disabled or removed (read from the state database)."""
        if reason := self.expired():
            return reason
        try:
            active = await asyncio.to_thread(_user_active, self._services, self._grant.principal.username)
        except SQLAlchemyError as exc:  # the database is down: keep serving until the token expires
            log.warning("stream: cannot re-check user %s: %s", self._grant.principal.username, exc)
            return None
        return None if active else "user no longer active"


async def _forward(websocket: WebSocket, queue: asyncio.Queue[Message], listener: asyncio.Task[None],
                   access: _Access) -> None:
    while not listener.done():
        getter = asyncio.create_task(queue.get())
        await asyncio.wait({getter, listener}, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
            return
        message = getter.result()
        if message is None:
            await websocket.close(code=CLOSE_SERVICE_RESTART)
            return
        reason = await access.revoked() if message is REVALIDATE else access.expired()
        if reason:
            await websocket.close(code=CLOSE_POLICY_VIOLATION, reason=reason)
            return
        if message is not REVALIDATE:
            await websocket.send_json(message)


def _user_active(services: ApiServices, username: str) -> bool:
    user = services.users.get(username)
    return user is not None and not user.disabled


async def _until_disconnect(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
