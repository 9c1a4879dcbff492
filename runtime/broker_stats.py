"""The broker's own drop counter on fmon's /metrics.

Mosquitto drops messages fmon never sees: QoS 0 messages past a client's queue limit, and any
message queued for a disconnected persistent session past `max_queued_messages` /
`max_queued_bytes` (while ingest is down or too slow). It counts them in the retained
`$SYS/broker/publish/messages/dropped` (since the broker started, for all clients), which this
small paho subscriber reads and exports as `fmon_broker_messages_dropped_total`. A broker that
publishes no such topic (the embedded amqtt broker) leaves the metric out instead of showing 0.

Not for: fmon's own losses (ingest.metrics) or anything on the ingest hot path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from core.broker import BrokerAddress
from ingest.mqtt import make_client

log = logging.getLogger(__name__)

DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"


class BrokerDrops(Collector):
    """Subscribes to the broker's drop counter; a Prometheus collector of its last value."""

    def __init__(self, address: BrokerAddress, client_id: str) -> None:
        self._address = address
        self._client = make_client(address, client_id)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self.dropped: int | None = None  # None until the broker has said
        self.updated = threading.Event()  # set at every value received (for tests and start-up checks)

    def start(self) -> None:
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def collect(self) -> Iterator[Metric]:
        if self.dropped is not None:
            yield CounterMetricFamily("fmon_broker_messages_dropped",
                                      f"messages the broker dropped since it started ({DROPPED_TOPIC})",
                                      value=self.dropped)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(DROPPED_TOPIC, qos=0)  # retained: the current value arrives at once

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self.dropped = int(message.payload)
        except ValueError:
            log.warning("%s is not a number: %r", DROPPED_TOPIC, message.payload[:40])
            return
        self.updated.set()
