"""`WS /api/v1/stream?token=…`: pushes alarm events as they are committed.

Browsers cannot set headers on a WebSocket, so the bearer token comes as a query parameter;
a bad token closes the socket with code 4401, a server shutdown with 1012 (service restart),
after which the console reconnects and re-reads the alarm list.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.deps import ApiServices
from api.hub import Message
from core.errors import AuthError

router = APIRouter()
CLOSE_UNAUTHORIZED = 4401
CLOSE_SERVICE_RESTART = 1012


@router.websocket("/stream")
async def stream(websocket: WebSocket, token: str = "") -> None:
    services: ApiServices = websocket.app.state.services
    await websocket.accept()  # accept first: a close before accept reaches browsers as 1006
    try:
        services.tokens.verify(token, services.clock.now())
    except AuthError as exc:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason=str(exc)[:100])
        return
    queue = services.hub.subscribe()
    # The client sends nothing; reading anyway is how a disconnect is noticed while idle.
    listener = asyncio.create_task(_until_disconnect(websocket))
    try:
        await websocket.send_json({"type": "hello"})
        await _forward(websocket, queue, listener)
    except WebSocketDisconnect:
        pass
    finally:
        listener.cancel()
        services.hub.unsubscribe(queue)


async def _forward(websocket: WebSocket, queue: asyncio.Queue[Message], listener: asyncio.Task[None]) -> None:
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
        await websocket.send_json(message)


async def _until_disconnect(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
