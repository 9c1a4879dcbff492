"""The internal event bus on MQTT (`fmon/internal/…`): alarm and incident events from ingest to the API.

Ingest publishes each committed alarm event (`fmon/internal/v1/alarm-events`) and incident event
(`…/incident-events`: incident.opened, step.updated, incident.closed…); every API process
subscribes to both and pushes the events to its WebSocket clients. The same path serves the
one-process demo and production.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import aiomqtt
import orjson

from alarms.events import AlarmEvent
from api.hub import EventHub
from core.broker import BrokerAddress
from core.topics import ALARM_EVENTS_TOPIC, INCIDENT_EVENTS_TOPIC
from ingest.mqtt import make_client
from playbooks.views import IncidentEvent

log = logging.getLogger(__name__)


class AlarmBusPublisher:
    """Publishes alarm events (QoS 1) on the internal topic; `incident` publishes incident events."""

    def __init__(self, address: BrokerAddress) -> None:
        self._client = make_client(address, f"fmon-alarms-{uuid.uuid4().hex[:8]}")
        self._address = address

    def start(self) -> None:
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()

    def __call__(self, event: AlarmEvent) -> None:
        self._client.publish(ALARM_EVENTS_TOPIC, orjson.dumps(event.as_message()), qos=1)

    def incident(self, event: IncidentEvent) -> None:
        self._client.publish(INCIDENT_EVENTS_TOPIC, orjson.dumps(event.as_message()), qos=1)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


async def relay_alarm_events(address: BrokerAddress, hub: EventHub, ready: asyncio.Event | None = None) -> None:
    """Subscribe to alarm and incident events and hand them to `hub`; reconnect until cancelled."""
    while True:
        try:
            async with aiomqtt.Client(
                address.host, address.port, username=address.username, password=address.password,
                identifier=f"fmon-api-{uuid.uuid4().hex[:8]}",
                tls_context=address.ssl_context(),
            ) as client:
                await client.subscribe(ALARM_EVENTS_TOPIC, qos=1)
                await client.subscribe(INCIDENT_EVENTS_TOPIC, qos=1)
                if ready is not None:
                    ready.set()
                async for message in client.messages:
                    hub.publish(orjson.loads(bytes(message.payload)))
        except aiomqtt.MqttError as exc:
            log.warning("alarm event relay lost the broker (%s); retrying in 2 s", exc)
            await asyncio.sleep(2)
