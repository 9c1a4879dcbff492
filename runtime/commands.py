"""The MQTT side of playbook commands: publish commands to devices, hand their acks over.

`MqttCommandLink` is the `playbooks.commands.CommandSender` of an ingest worker. It publishes
`{"id", "command", "args"}` (QoS 1) on `fmon/v1/{site}/{family}/{device}/command` and subscribes
to `fmon/v1/{site}/+/+/command/ack`; each valid ack goes to `on_ack` (the playbook scheduler's
inbox, so paho's network thread only hands it over). The session is persistent (fixed client id,
clean session off): acks that arrive while the worker is down wait at the broker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from core.broker import BrokerAddress
from core.errors import TopicError
from core.topics import ROOT, TopicKind, command_topic, parse_topic
from ingest.mqtt import make_client
from playbooks.commands import Ack, OutgoingCommand, parse_ack

log = logging.getLogger(__name__)
QOS = 1


class MqttCommandLink:
    def __init__(self, address: BrokerAddress, client_id: str, on_ack: Callable[[Ack], None],
                 site: str = "+") -> None:
        self._address, self._on_ack = address, on_ack
        self._filter = f"{ROOT}/{site}/+/+/command/ack"
        self.connected = threading.Event()
        self._client = make_client(address, client_id, clean_start=False)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def start(self) -> None:
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def send(self, command: OutgoingCommand) -> bool:
        """Publish; False while the broker is away (the scheduler tries again on its next tick)."""
        if not self.connected.is_set():
            return False
        info = self._client.publish(command_topic(command.device), command.payload(), qos=QOS)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        log.info("command %s (%s) sent to %s", command.command_id, command.name, command.device.key)
        return True

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker %s refused the command link: %s", self._address.url, reason)
            return
        client.subscribe(self._filter, qos=QOS)
        self.connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, _reason: object, _p: object) -> None:
        self.connected.clear()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        try:
            parsed = parse_topic(message.topic)
        except TopicError:
            return
        if parsed.kind is not TopicKind.COMMAND_ACK or parsed.device is None:
            return
        ack = parse_ack(parsed.device, bytes(message.payload))
        if ack is None:
            log.warning("malformed command ack on %s: %r", message.topic, bytes(message.payload)[:200])
            return
        self._on_ack(ack)
