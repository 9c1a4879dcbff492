"""The MQTT side of ingest: a network thread that only hands messages over, and batches.

The network thread (`ingest.wire`, a minimal MQTT 3.1.1 subscriber) puts each socket read's
messages into a queue; a processing thread takes them in batches (up to `batch_size`, or
whatever arrived within `flush_seconds`) and calls the handler once per batch. QoS 1 messages
are acknowledged manually, one write per batch: the handler calls `ack()` once the batch is
durable (spooled). A batch whose handler fails before that is retried, so an unacknowledged
message is never lost; with a persistent session (fixed client id, clean session off) the
broker also redelivers what was unacknowledged when the process died or the connection broke.

`make_client` builds the paho clients of the rest of fmon (alarm bus, device commands), which
publish little and need paho's completeness more than speed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.broker import BrokerAddress
from core.clock import Clock
from ingest.wire import Publish, WireSubscriber

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 0
    connection: int = 0  # which connection delivered it: acknowledgements go back on that one only


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
    context = address.ssl_context()
    if context is not None:
        client.tls_set_context(context)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


class MqttConsumer:
    """Subscribes to topic filters and feeds batches of messages to a handler thread."""

    def __init__(self, address: BrokerAddress, client_id: str, topics: Sequence[str],
                 handler: BatchHandler, clock: Clock, *, batch_size: int = 5000,
                 flush_seconds: float = 0.2) -> None:
        self._handler, self._clock = handler, clock
        self._batch_size, self._flush_seconds = batch_size, flush_seconds
        self._queue: queue.SimpleQueue[list[Message]] = queue.SimpleQueue()
        self._backlog = 0  # messages queued, not yet taken into a batch
        self._backlog_lock = threading.Lock()  # counted from two threads
        self._pending: list[Message] = []  # taken from the queue, left over for the next batch
        self._stopping = threading.Event()
        self._subscriber = WireSubscriber(address, client_id, topics, self._on_publishes)
        self.connected = self._subscriber.connected
        self._worker = threading.Thread(target=self._run, name="ingest-batches", daemon=True)

    def start(self) -> None:
        self._worker.start()
        self._subscriber.start()

    def stop(self) -> None:
        """Disconnect, then let the worker handle what is already queued."""
        self._stopping.set()
        self._subscriber.stop()
        self._worker.join(timeout=30)

    @property
    def backlog(self) -> int:
        return self._backlog

    def _on_publishes(self, publishes: list[Publish], connection: int) -> None:
        now = self._clock.now()
        with self._backlog_lock:
            self._backlog += len(publishes)
        self._queue.put([Message(p.topic, p.payload, now, p.mid, p.qos, connection) for p in publishes])

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish from ingest (e.g. a Sparkplug rebirth request); dropped while disconnected."""
        if not self._subscriber.publish(topic, payload, qos):
            log.warning("not connected: could not publish to %s", topic)

    def _run(self) -> None:
        while not (self._stopping.is_set() and self._queue.empty() and not self._pending):
            batch = self._next_batch()
            if batch:
                self._handle(batch)

    def _handle(self, batch: list[Message]) -> None:
        acked = threading.Event()

        def ack() -> None:
            by_connection: defaultdict[int, list[int]] = defaultdict(list)
            for message in batch:
                if message.qos > 0:
                    by_connection[message.connection].append(message.mid)
            for connection, mids in by_connection.items():
                self._subscriber.ack(connection, mids)
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
        batch, self._pending = self._pending, []
        if not batch:
            try:
                batch = self._queue.get(timeout=self._flush_seconds)
            except queue.Empty:
                return []
        size = sum(len(m.payload) for m in batch)
        while len(batch) < self._batch_size and size < MAX_BATCH_BYTES:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            batch.extend(more)
            size += sum(len(m.payload) for m in more)
        if len(batch) > self._batch_size:
            batch, self._pending = batch[:self._batch_size], batch[self._batch_size:]
        with self._backlog_lock:
            self._backlog -= len(batch)
        return batch
