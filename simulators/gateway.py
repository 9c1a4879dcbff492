"""A simulated gateway's link to the broker: live publishing and store-and-forward.

`GatewayLink` publishes readings per device (`telemetry` mode) or in gateway batches (`batch`
mode). While its transport is down it buffers them, bounded (oldest dropped first, counted),
and when the transport is back it replays them in order with `historical: true` before anything
new, as DESIGN.md §3 asks of gateways.

The transport is the MQTT connection (`simulators.mqtt_transport.MqttTransport`) or, in tests
and offline runs, `MemoryTransport`, which records what would be published and what the broker
would publish on the gateway's behalf (its Will) when the connection is cut.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from core.domain import DeviceRef, Reading
from core.topics import command_ack_topic, gateway_batch_topic, gateway_status_topic, telemetry_topic
from simulators.payloads import batch_payloads, telemetry_payload

Mode = Literal["telemetry", "batch"]
DEFAULT_BUFFER = 100_000


class Transport(Protocol):
    """One gateway's connection to the broker."""

    @property
    def connected(self) -> bool: ...

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Hand a QoS 1 message to the connection; False if it could not take it."""
        ...

    def cut(self) -> None:
        """Drop the connection without DISCONNECT, so the broker publishes the Will."""
        ...

    def restore(self) -> None:
        """Connect again after `cut` (announcing `online`)."""
        ...

    def close(self) -> None:
        """Announce `offline` and DISCONNECT cleanly."""
        ...


@dataclass
class LinkStats:
    live: int = 0
    replayed: int = 0
    dropped: int = 0
    messages: int = 0
    acks: int = 0


class GatewayLink:
    def __init__(self, site: str, gateway_id: str, transport: Transport, *, mode: Mode = "telemetry",
                 buffer_limit: int = DEFAULT_BUFFER) -> None:
        self.site, self.gateway_id, self.transport, self.mode = site, gateway_id, transport, mode
        self._buffer: deque[Reading] = deque()
        self._limit = buffer_limit
        self.stats = LinkStats()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def send(self, readings: Sequence[Reading]) -> None:
        """Publish now if connected (after replaying any backlog), else keep for later."""
        if not readings:
            return
        self.poll()
        if self._buffer or not self.transport.connected:
            self._keep(readings)
            return
        failed = self._publish(readings, historical=False)
        self.stats.live += len(readings) - len(failed)
        self._keep(failed)

    def poll(self) -> int:
        """Replay the backlog if the transport is up again; returns how many readings went out."""
        if not self._buffer or not self.transport.connected:
            return 0
        backlog = list(self._buffer)
        self._buffer.clear()
        failed = self._publish(backlog, historical=True)
        self._buffer.extend(failed)
        sent = len(backlog) - len(failed)
        self.stats.replayed += sent
        return sent

    def ack(self, device: DeviceRef, payload: bytes) -> None:
        if self.transport.publish(command_ack_topic(device), payload):
            self.stats.acks += 1

    def _keep(self, readings: Sequence[Reading]) -> None:
        self._buffer.extend(readings)
        while len(self._buffer) > self._limit:
            self._buffer.popleft()  # a real gateway's flash is finite: lose the oldest first
            self.stats.dropped += 1

    def _publish(self, readings: Sequence[Reading], *, historical: bool) -> list[Reading]:
        """Publish; return the readings the transport did not take (kept for a later replay)."""
        if self.mode == "batch":
            return self._publish_batches(readings, historical)
        for index, reading in enumerate(readings):
            if not self.transport.publish(telemetry_topic(reading.device), telemetry_payload(reading,
                                                                                           historical=historical)):
                return list(readings[index:])
            self.stats.messages += 1
        return []

    def _publish_batches(self, readings: Sequence[Reading], historical: bool) -> list[Reading]:
        topic = gateway_batch_topic(self.site, self.gateway_id)
        size = 1000
        for index, payload in enumerate(batch_payloads(readings, historical=historical, limit=size)):
            if not self.transport.publish(topic, payload):
                return list(readings[index * size:])
            self.stats.messages += 1
        return []


@dataclass(frozen=True, slots=True)
class Published:
    """A message as the broker would deliver it: when (simulated time), where, what, retained?"""

    at: datetime
    topic: str
    payload: bytes
    retain: bool = False


class MemoryTransport:
    """An in-memory connection for tests and offline runs; `now` gives the simulated time."""

    def __init__(self, site: str, gateway_id: str, now: Callable[[], datetime], log: list[Published]) -> None:
        self._status = gateway_status_topic(site, gateway_id)
        self._now, self.log = now, log
        self._up = True
        self.log.append(Published(now(), self._status, b"online", retain=True))

    def start(self) -> None:
        """Nothing to do: a memory connection is up from the start."""

    def wait_connected(self, timeout: float) -> bool:  # noqa: ARG002 - same signature as MqttTransport
        return self._up

    @property
    def refusal(self) -> str | None:
        """A memory connection is never refused."""
        return None

    @property
    def connected(self) -> bool:
        return self._up

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        if not self._up:
            return False
        self.log.append(Published(self._now(), topic, payload, retain))
        return True

    def cut(self) -> None:
        if self._up:
            self._up = False
            self.log.append(Published(self._now(), self._status, b"offline", retain=True))  # the Will

    def restore(self) -> None:
        if not self._up:
            self._up = True
            self.log.append(Published(self._now(), self._status, b"online", retain=True))

    def close(self) -> None:
        self.cut()
