"""The embedded MQTT broker of `fmon demo` (amqtt, in-process, loopback only)."""

from __future__ import annotations

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


async def start_embedded_broker(host: str, port: int) -> Broker:
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    broker._subscriptions = SnapshotDict()  # works around the amqtt race above
    try:
        await broker.start()
    except Exception as exc:  # amqtt raises its own BrokerError or OSError
        raise ConfigError(f"embedded MQTT broker cannot listen on {host}:{port}: {exc}") from exc
    return broker
