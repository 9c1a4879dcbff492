"""One simulated gateway's MQTT connection (paho-mqtt 2, MQTT 3.1.1, QoS 1).

On connect it announces `online` (retained) on its status topic, whose Will is a retained
`offline`, and subscribes to the command topics of its site; commands go to `on_command` (the
runner queues them for its own thread, so device models are only ever touched by one thread).
paho reconnects by itself after a broker outage; `cut()` drops the TCP connection without a
DISCONNECT, so the broker publishes the Will exactly as it would for a gateway that lost power.
A broker that refuses the login (CONNACK: bad user name or password, not authorised) is not an
outage: `refusal` says why, and `wait_connected` returns at once instead of waiting it out.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from core.broker import BrokerAddress
from core.errors import FmonError
from core.topics import ROOT, gateway_status_topic

log = logging.getLogger(__name__)
CommandHandler = Callable[[str, bytes], None]
QOS = 1
# CONNACK refusals in words: MQTT 3.1.1 return codes 4 and 5, and the MQTT 5 reason codes paho maps them to.
_REFUSALS = {4: "bad user name or password", 134: "bad user name or password",
             5: "not authorised", 135: "not authorised"}


class BrokerRefused(FmonError):
    """The broker answered the login with a refusal (CONNACK), e.g. bad credentials or no permission."""


def refusal_text(reason: object) -> str:
    """'broker refused the connection: not authorised', from paho's CONNACK reason code."""
    value = getattr(reason, "value", reason)
    words = _REFUSALS.get(value, str(reason)) if isinstance(value, int) else str(reason)
    return f"broker refused the connection: {words}"


def is_refusal(reason: object) -> bool:
    return bool(getattr(reason, "is_failure", False))


class MqttTransport:
    def __init__(self, address: BrokerAddress, site: str, gateway_id: str, *,
                 on_command: CommandHandler | None = None, client_id: str | None = None,
                 max_inflight: int = 1000, reconnect_delay: tuple[int, int] = (1, 30)) -> None:
        self._address, self._on_command = address, on_command
        self.status_topic = gateway_status_topic(site, gateway_id)
        self._command_filter = f"{ROOT}/{site}/+/+/command"
        self._up = threading.Event()
        self._answered = threading.Event()  # the broker answered a login, either way
        self.refusal: str | None = None  # why the broker refused the last login, if it did
        self._cut = self._closing = False
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"sim-{site}-{gateway_id}")
        if address.username:
            self._client.username_pw_set(address.username, address.password)
        context = address.ssl_context()  # mqtts://, with ?cafile= for a private CA
        if context is not None:
            self._client.tls_set_context(context)
        self._client.will_set(self.status_topic, b"offline", qos=QOS, retain=True)
        self._client.reconnect_delay_set(*reconnect_delay)  # seconds, doubling from the first to the second
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def start(self) -> None:
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """True once connected; False after `timeout`, or at once when the broker refused the login."""
        self._answered.wait(timeout)
        return self._up.is_set()

    @property
    def connected(self) -> bool:
        return self._up.is_set() and not self._cut

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        if not self.connected:
            return False
        info = self._client.publish(topic, payload, qos=QOS, retain=retain)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def cut(self) -> None:
        """Kill the connection as a power cut would: no DISCONNECT, so the Will fires."""
        self._cut = True
        self._up.clear()
        self._answered.clear()
        self._client.loop_stop()
        sock = self._client.socket()
        if isinstance(sock, socket.socket):  # plain or TLS (ssl.SSLSocket is a socket.socket)
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        # paho's loop_start() makes a new wake-up socket pair without closing the old one; close
        # it here, or every cut/restore leaks two sockets (paho-mqtt 2.1).
        reset = getattr(self._client, "_reset_sockets", None)
        if reset is not None:
            reset(sockpair_only=True)

    def restore(self) -> None:
        self._cut = False
        try:
            self._client.reconnect()
        except OSError as exc:  # broker away: the network loop keeps retrying
            log.info("gateway %s: reconnect failed (%s); retrying", self.status_topic, exc)
        self._client.loop_start()

    def close(self, timeout: float = 5.0) -> None:
        """Announce `offline` (retained) and disconnect cleanly."""
        self._closing = True
        if self.connected:
            info = self._client.publish(self.status_topic, b"offline", qos=QOS, retain=True)
            info.wait_for_publish(timeout)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if is_refusal(reason):
            self.refusal = refusal_text(reason)
            log.warning("gateway %s: %s", self.status_topic, self.refusal)
            self._answered.set()
            return
        self.refusal = None
        client.publish(self.status_topic, b"online", qos=QOS, retain=True)
        if self._on_command is not None:
            client.subscribe(self._command_filter, qos=QOS)
        self._up.set()
        self._answered.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        self._up.clear()
        if self.refusal is None:  # a refusal stays the answer until a login succeeds
            self._answered.clear()
        if not (self._cut or self._closing):
            log.info("gateway %s: disconnected (%s); buffering until reconnected", self.status_topic, reason)

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        if self._on_command is not None:
            self._on_command(message.topic, bytes(message.payload))
