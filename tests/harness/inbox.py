"""What a `ingest.wire.WireSubscriber` hands over, collected for tests that read it back."""

from __future__ import annotations

import queue

from ingest.wire import Publish

WAIT_S = 20


class Inbox:
    """An `on_publishes` callback that keeps every message with the connection that delivered it."""

    def __init__(self) -> None:
        self.items: queue.SimpleQueue[tuple[Publish, int]] = queue.SimpleQueue()

    def __call__(self, publishes: list[Publish], connection: int) -> None:
        for p in publishes:
            self.items.put((p, connection))

    def take(self, count: int, timeout: float = WAIT_S) -> list[tuple[Publish, int]]:
        """The next `count` messages; fails the test (queue.Empty) if they do not come in time."""
        return [self.items.get(timeout=timeout) for _ in range(count)]

    def topics_within(self, seconds: float) -> set[str]:
        """The topics of whatever arrives until `seconds` pass without a message."""
        topics = set()
        try:
            while True:
                topics.add(self.items.get(timeout=seconds)[0].topic)
        except queue.Empty:
            return topics

    def none_within(self, seconds: float) -> bool:
        try:
            self.items.get(timeout=seconds)
        except queue.Empty:
            return True
        return False
