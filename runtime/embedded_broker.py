"""The embedded MQTT broker of `fmon demo` (amqtt, in-process, loopback only)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import ItemsView, Iterator
from typing import Any

from amqtt.broker import Broker

from core.errors import ConfigError


class SnapshotDict(dict[str, Any]):
    """A dict whose iteration walks a snapshot.

    amqtt 0.12.1 (the newest) iterates its subscription table across awaits while other client
    sessions subscribe or leave (`broker.py`: `for topic in self._subscriptions: await …`, and the
    broadcast loop over `.items()`), which raises "dictionary changed size during iteration" and
    drops the connecting client. Those loops only need the subscriptions as they were when the
    loop began.
    """

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().__iter__()))

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]  # a view of the snapshot
        return dict(super().items()).items()


class EmbeddedBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """amqtt's broker with two mends: its subscription table iterates over a snapshot (above), and
    shutting down closes every connection it accepted (amqtt 0.12.1 leaves the odd one open, e.g. a
    client that connects while sessions are being cleaned up; its socket then outlives the loop)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._subscriptions = SnapshotDict()
        self._accepted: weakref.WeakSet[asyncio.StreamWriter] = weakref.WeakSet()

    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        self._accepted.add(writer)
        await super().stream_connected(reader, writer, listener_name)

    async def shutdown(self) -> None:
        await super().shutdown()
        for writer in list(self._accepted):
            if not writer.is_closing():
                writer.close()
        await asyncio.sleep(0)  # let the transports finish closing before the loop may stop


async def start_embedded_broker(host: str, port: int) -> Broker:
    broker = EmbeddedBroker({
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    try:
        await broker.start()
    except Exception as exc:  # amqtt raises its own BrokerError or OSError
        raise ConfigError(f"embedded MQTT broker cannot listen on {host}:{port}: {exc}") from exc
    return broker
