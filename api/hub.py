"""Fan-out of events to connected WebSocket clients, fed from any thread."""

from __future__ import annotations

import asyncio
from typing import Any


class EventHub:
    """Each subscriber gets its own bounded queue; a slow browser loses only its own events."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._queue_size = queue_size
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    def publish(self, message: dict[str, Any]) -> None:
        """Deliver to every subscriber; safe to call from the event loop."""
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()  # drop the oldest for this client; it re-syncs over REST
            queue.put_nowait(message)

    def publish_threadsafe(self, message: dict[str, Any]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.publish, message)
