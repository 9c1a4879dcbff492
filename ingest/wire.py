"""A minimal MQTT 3.1.1 subscriber for the ingest hot path: whole socket reads, batched acks.

paho-mqtt handles one packet per call in Python (several socket reads, a message object, a
callback and a PUBACK write for each): a paho consumer doing nothing else drains a Mosquitto
backlog at 0.30 of mosquitto_sub's rate on the 2-core machine (40 000 vs 134 000 msg/s). This
client parses every packet of a socket read at once and acknowledges a batch of QoS 1 messages
with one write; alone it drains the same backlog at about 3× mosquitto_sub's rate (see
docs/performance.md). It does only what an ingest subscriber needs:

- CONNECT with a persistent session (clean session off), credentials and TLS; reconnect with
  capped exponential backoff;
- SUBSCRIBE at QoS 1 on every connection;
- PUBLISH in at QoS 0 and 1, PUBACK out when the caller says the messages are durable, only
  on the connection that delivered them (a packet id means nothing on a later connection: the
  broker redelivers what was not acknowledged);
- PUBLISH out at QoS 0 and 1, fire and forget (Sparkplug rebirth requests: a lost one is
  requested again at the next gap);
- PINGREQ keep-alive, and a connection that stays silent past 1.5 keep-alive periods is dropped.

Everything else (MQTT 5, QoS 2 in, retained publishing, Wills) is paho's job elsewhere in fmon.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.broker import BrokerAddress

log = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 4, 8, 9, 12, 13, 14
READ_BYTES = 256 * 1024
MAX_PACKET_BYTES = 16 * 1024 * 1024  # far above fmon's payload limit; anything bigger is a broken stream
CONNACK_REASONS = {1: "unacceptable protocol version", 2: "client id rejected", 3: "server unavailable",
                   4: "bad user name or password", 5: "not authorized"}


class ProtocolError(Exception):
    """The byte stream from the broker is not MQTT 3.1.1 as this client understands it."""


@dataclass(frozen=True, slots=True)
class Publish:
    """One PUBLISH from the broker (mid 0 for QoS 0)."""

    topic: str
    payload: bytes
    qos: int
    mid: int


@dataclass(frozen=True, slots=True)
class Control:
    """Any other packet: its type and the bytes after the fixed header."""

    kind: int
    body: bytes


Packet = Publish | Control


def parse_packets(buf: bytearray | bytes) -> tuple[list[Packet], int]:
    """Every complete packet at the start of `buf`, and how many bytes they took."""
    packets: list[Packet] = []
    pos, end_of_data = 0, len(buf)
    while pos + 2 <= end_of_data:
        header = buf[pos]
        length, multiplier, index = 0, 1, pos + 1
        while True:
            if index >= end_of_data:
                return packets, pos  # the length itself is still incomplete
            byte = buf[index]
            length += (byte & 0x7F) * multiplier
            index += 1
            if not byte & 0x80:
                break
            multiplier *= 128
            if multiplier > 128 ** 3:
                raise ProtocolError("remaining length longer than four bytes")
        if length > MAX_PACKET_BYTES:
            raise ProtocolError(f"packet of {length} bytes")
        end = index + length
        if end > end_of_data:
            break
        kind = header >> 4
        packets.append(_publish(buf, header, index, end) if kind == PUBLISH else Control(kind, bytes(buf[index:end])))
        pos = end
    return packets, pos


def _publish(buf: bytearray | bytes, header: int, start: int, end: int) -> Publish:
    if end - start < 2:
        raise ProtocolError("PUBLISH without a topic")
    topic_end = start + 2 + ((buf[start] << 8) | buf[start + 1])
    qos = (header >> 1) & 0x03
    body_start = topic_end + (2 if qos else 0)
    if body_start > end or qos == 3:
        raise ProtocolError("PUBLISH shorter than its topic and packet id")
    mid = (buf[topic_end] << 8) | buf[topic_end + 1] if qos else 0
    topic = bytes(buf[start + 2:topic_end]).decode("utf-8", errors="replace")
    return Publish(topic, bytes(buf[body_start:end]), qos, mid)


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + _remaining_length(len(body)) + body


def connect_packet(client_id: str, keepalive: int, *, clean_session: bool, username: str | None,
                   password: str | None) -> bytes:
    flags = (0x02 if clean_session else 0) | (0x80 if username is not None else 0) | \
        (0x40 if password is not None else 0)
    body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return packet(CONNECT << 4, body)


def subscribe_packet(mid: int, topics: Sequence[str], qos: int = 1) -> bytes:
    return packet((SUBSCRIBE << 4) | 0x02, struct.pack("!H", mid) + b"".join(_string(t) + bytes([qos]) for t in topics))


def publish_packet(topic: str, payload: bytes, qos: int, mid: int) -> bytes:
    body = _string(topic) + (struct.pack("!H", mid) if qos else b"") + payload
    return packet((PUBLISH << 4) | (qos << 1), body)


def puback_packets(mids: Sequence[int]) -> bytes:
    return b"".join(b"\x40\x02" + struct.pack("!H", mid) for mid in mids)


OnPublishes = Callable[[list[Publish], int], None]  # the messages of one read, and their connection number


class WireSubscriber:
    """A subscriber thread: connects, subscribes and hands over each read's messages."""

    def __init__(self, address: BrokerAddress, client_id: str, topics: Sequence[str], on_publishes: OnPublishes,
                 *, keepalive: int = 30, clean_session: bool = False,
                 backoff: tuple[float, float] = (1.0, 30.0), tls_context: ssl.SSLContext | None = None) -> None:
        self._address, self._client_id, self._topics = address, client_id, tuple(topics)
        self._on_publishes, self._keepalive, self._clean = on_publishes, keepalive, clean_session
        self._backoff = backoff
        self._tls = tls_context if tls_context is not None else address.ssl_context()
        self._stopping = threading.Event()
        self.connected = threading.Event()
        self._send_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._connection = 0  # increases with every successful connection
        self._last_sent = 0.0
        self._next_mid = 0
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{client_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        with self._send_lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                self._send(packet(DISCONNECT << 4, b""), sock)
            _shutdown(sock)
        self._thread.join(timeout)

    def ack(self, connection: int, mids: Sequence[int]) -> None:
        """Acknowledge QoS 1 messages delivered on `connection`; if that connection is gone the
        broker redelivers them to the next one, and acknowledging them there could hit another message."""
        if not mids:
            return
        with self._send_lock:
            sock = self._sock if connection == self._connection else None
        if sock is not None:
            try:
                self._send(puback_packets(mids), sock)
            except OSError as exc:
                log.warning("could not acknowledge %d messages (%s); the broker will redeliver them", len(mids), exc)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """Send a message if connected; False when there is no connection to send it on."""
        with self._send_lock:
            sock = self._sock
            self._next_mid = self._next_mid % 0xFFFF + 1
            mid = self._next_mid
        if sock is None:
            return False
        try:
            self._send(publish_packet(topic, payload, qos, mid), sock)
        except OSError:
            return False
        return True

    def _send(self, data: bytes, sock: socket.socket) -> None:
        with self._send_lock:
            sock.sendall(data)
            self._last_sent = time.monotonic()

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stopping.is_set():
            try:
                sock = self._open()
            except (OSError, ProtocolError) as exc:
                log.warning("MQTT %s: cannot connect (%s); retrying in %.0f s", self._address.url, exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]
            try:
                self._session(sock)
            except (OSError, ProtocolError) as exc:
                if not self._stopping.is_set():
                    log.warning("MQTT %s: connection lost (%s); reconnecting", self._address.url, exc)
            finally:
                self.connected.clear()
                with self._send_lock:
                    self._sock = None
                _shutdown(sock)
            if not self._stopping.is_set():
                self._stopping.wait(self._backoff[0])

    def _open(self) -> socket.socket:
        raw = socket.create_connection((self._address.host, self._address.port), timeout=10)
        sock: socket.socket = raw
        try:
            if self._tls is not None:
                sock = self._tls.wrap_socket(raw, server_hostname=self._address.host)
            sock.sendall(connect_packet(self._client_id, self._keepalive, clean_session=self._clean,
                                        username=self._address.username, password=self._address.password))
            code = _read_connack(sock)
        except BaseException:
            _shutdown(sock)
            raise
        if code != 0:
            _shutdown(sock)
            raise ProtocolError(f"broker refused the connection: {CONNACK_REASONS.get(code, f'code {code}')}")
        return sock

    def _session(self, sock: socket.socket) -> None:
        sock.settimeout(self._keepalive / 2)
        with self._send_lock:
            self._sock, self._connection = sock, self._connection + 1
            connection = self._connection
        self._send(subscribe_packet(1, self._topics), sock)
        log.info("MQTT %s: connected as %s, subscribing to %s", self._address.url, self._client_id,
                 ", ".join(self._topics))
        buffer = bytearray()
        last_received = time.monotonic()
        while not self._stopping.is_set():
            try:
                chunk = sock.recv(READ_BYTES)
            except TimeoutError:
                chunk = None
            now = time.monotonic()
            if chunk == b"":
                raise ConnectionError("the broker closed the connection")
            if chunk:
                last_received = now
                buffer += chunk
                packets, used = parse_packets(buffer)
                del buffer[:used]
                self._dispatch(packets, connection)
            elif now - last_received > 1.5 * self._keepalive:
                raise ConnectionError(f"nothing from the broker for {now - last_received:.0f} s")
            if now - self._last_sent >= self._keepalive / 2:
                self._send(packet(PINGREQ << 4, b""), sock)

    def _dispatch(self, packets: list[Packet], connection: int) -> None:
        publishes = [p for p in packets if isinstance(p, Publish)]
        for p in packets:
            if isinstance(p, Control) and p.kind == SUBACK:
                refused = [i for i, code in enumerate(p.body[2:]) if code == 0x80]
                if refused:
                    log.error("MQTT %s refused the subscriptions %s", self._address.url,
                              ", ".join(self._topics[i] for i in refused if i < len(self._topics)))
                self.connected.set()
        if publishes:
            self._on_publishes(publishes, connection)


def _read_connack(sock: socket.socket) -> int:
    data = b""
    while len(data) < 4:
        chunk = sock.recv(4 - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection before CONNACK")
        data += chunk
    if data[0] >> 4 != CONNACK or data[1] != 2:
        raise ProtocolError(f"expected CONNACK, got {data.hex()}")
    return data[3]


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
