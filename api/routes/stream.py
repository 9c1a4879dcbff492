"""`WS /api/v1/stream?token=…`: pushes alarm events as they are committed.

Browsers cannot set headers on a WebSocket, so the bearer token comes as a query parameter;
a bad token closes the socket with code 4401.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.deps import ApiServices
from core.errors import AuthError

router = APIRouter()
CLOSE_UNAUTHORIZED = 4401


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
    try:
        await websocket.send_json({"type": "hello"})
        while True:
            await websocket.send_json(await queue.get())
    except WebSocketDisconnect:
        pass
    finally:
        services.hub.unsubscribe(queue)
