"""The MQTT side of ingest: a paho-mqtt client whose network thread only hands messages over.

Messages go into a queue; a processing thread takes them in batches (up to `batch_size`, or
whatever arrived within `flush_seconds`) and calls the handler once per batch. QoS 1 messages
are acknowledged manually: the handler calls `ack()` once the batch is durable (spooled). A
batch whose handler fails before that is retried, so an unacknowledged message is never lost;
with a persistent session (fixed client id, clean session off) the broker also redelivers
what was unacknowledged when the process died.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.broker import BrokerAddress
from core.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 0


Ack = Callable[[], None]
BatchHandler = Callable[[list[Message], Ack], None]
RETRY_SECONDS = 1.0
MAX_BATCH_BYTES = 4 * 1024 * 1024  # gateway batches are large: bound a batch by size too


def make_client(address: BrokerAddress, client_id: str, *, clean_start: bool = True,
                manual_ack: bool = False) -> mqtt.Client:
    """A paho client (MQTT 3.1.1) configured for `address`: credentials, TLS, reconnect delays."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_start,
                         manual_ack=manual_ack)
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


class MqttConsumer:
    """Subscribes to topic filters and feeds batches of messages to a handler thread."""

    def __init__(self, address: BrokerAddress, client_id: str, topics: Sequence[str],
                 handler: BatchHandler, clock: Clock, *, batch_size: int = 5000,
                 flush_seconds: float = 0.2) -> None:
        self._address, self._topics, self._handler, self._clock = address, tuple(topics), handler, clock
        self._batch_size, self._flush_seconds = batch_size, flush_seconds
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self.connected = threading.Event()
        self._client = make_client(address, client_id, clean_start=False, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._worker = threading.Thread(target=self._run, name="ingest-batches", daemon=True)

    def start(self) -> None:
        self._worker.start()
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect, then let the worker handle what is already queued."""
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()
        self._worker.join(timeout=30)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker %s refused the connection: %s", self._address.url, reason)
            return
        client.subscribe([(topic, 1) for topic in self._topics])
        self.connected.set()
        log.info("ingest connected to %s, subscribed to %s", self._address.url, ", ".join(self._topics))

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("ingest lost the broker %s (%s); reconnecting", self._address.url, reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(Message(msg.topic, bytes(msg.payload), self._clock.now(), msg.mid, msg.qos))

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish from ingest (e.g. a Sparkplug rebirth request)."""
        self._client.publish(topic, payload, qos=qos)

    def _run(self) -> None:
        while not (self._stopping.is_set() and self._queue.empty()):
            batch = self._next_batch()
            if batch:
                self._handle(batch)

    def _handle(self, batch: list[Message]) -> None:
        acked = threading.Event()

        def ack() -> None:
            for message in batch:
                if message.qos > 0:
                    self._client.ack(message.mid, message.qos)
            acked.set()

        while True:
            try:
                self._handler(batch, ack)
                return
            except Exception:  # the consumer must survive any bug or outage in one batch
                if acked.is_set():
                    log.exception("ingest failed after accepting a batch of %d messages", len(batch))
                    return
                log.exception("ingest could not accept a batch of %d messages; retrying", len(batch))
                if self._stopping.wait(RETRY_SECONDS):
                    return  # unacknowledged: the broker redelivers them to the next session

    def _next_batch(self) -> list[Message]:
        try:
            batch = [self._queue.get(timeout=self._flush_seconds)]
        except queue.Empty:
            return []
        size = len(batch[0].payload)
        while len(batch) < self._batch_size and size < MAX_BATCH_BYTES:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
            size += len(batch[-1].payload)
        return batch
