"""Fan-out of events to connected WebSocket clients, fed from any thread."""

from __future__ import annotations

import asyncio
from typing import Any, Final

Message = dict[str, Any] | None  # None tells a subscriber that the server is shutting down
# Tells each subscriber to check again that its client may still listen (token unexpired, user
# active); recognised by identity and never sent to a browser.
REVALIDATE: Final[dict[str, Any]] = {"type": "revalidate"}


class EventHub:
    """Each subscriber gets its own bounded queue; a slow browser loses only its own events,
    and is told to re-sync (`{"type": "resync"}`) when it did."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[Message]] = set()
        self._queue_size = queue_size
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self) -> asyncio.Queue[Message]:
        queue: asyncio.Queue[Message] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Message]) -> None:
        self._subscribers.discard(queue)

    def publish(self, message: dict[str, Any]) -> None:
        """Deliver to every subscriber; call on the event loop."""
        for queue in list(self._subscribers):
            if queue.full():
                _drain(queue)
                queue.put_nowait({"type": "resync"})
            queue.put_nowait(message)

    def publish_threadsafe(self, message: dict[str, Any]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.publish, message)

    def revalidate(self) -> None:
        """Have every subscriber re-check its client's access; call on the event loop."""
        self.publish(REVALIDATE)

    def revalidate_threadsafe(self) -> None:
        self.publish_threadsafe(REVALIDATE)

    def close(self) -> None:
        """Tell every subscriber to end (server shutdown)."""
        for queue in list(self._subscribers):
            _drain(queue)
            queue.put_nowait(None)


def _drain(queue: asyncio.Queue[Message]) -> None:
    while not queue.empty():
        queue.get_nowait()
