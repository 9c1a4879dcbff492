"""The ingest MQTT subscriber (`ingest.wire`): the packet parser, and the client against Mosquitto.

The parser is checked on random packet streams cut at random places (a socket read ends
anywhere); the client on what matters for ingest: QoS 1 messages it has not acknowledged come
back after a lost connection, acknowledgements never cross connections, and a refused or
malformed stream never takes the thread down.
"""

from __future__ import annotations

import random
import socket
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.broker import BrokerAddress
from ingest.wire import (
    PINGRESP,
    SUBACK,
    Control,
    ProtocolError,
    Publish,
    WireSubscriber,
    packet,
    parse_packets,
    publish_packet,
)
from tests.harness import MosquittoServer
from tests.harness.inbox import Inbox

WAIT_S = 20


def random_packets(rng: random.Random, count: int) -> list[Publish | Control]:
    out: list[Publish | Control] = []
    for _ in range(count):
        if rng.random() < 0.8:
            qos = rng.choice((0, 1))
            topic = "fmon/v1/s1/env/" + "".join(rng.choice("abc设备-_") for _ in range(rng.randint(1, 30)))
            size = rng.choice((0, 1, 127, 128, 16_383, 16_384, rng.randint(0, 300_000)))
            out.append(Publish(topic, rng.randbytes(size), qos, rng.randint(1, 65535) if qos else 0))
        else:
            out.append(Control(rng.choice((SUBACK, PINGRESP)), rng.randbytes(rng.choice((0, 3)))))
    return out


def encode(p: Publish | Control) -> bytes:
    if isinstance(p, Publish):
        return publish_packet(p.topic, p.payload, p.qos, p.mid)
    return packet(p.kind << 4, p.body)


@pytest.mark.parametrize("seed", range(20))
def test_the_parser_reads_back_any_stream_cut_anywhere(seed: int) -> None:
    rng = random.Random(seed)
    sent = random_packets(rng, 40)
    stream = b"".join(encode(p) for p in sent)
    received: list[Publish | Control] = []
    buffer = bytearray()
    position = 0
    while position < len(stream):
        step = rng.choice((1, 2, 3, 7, 1000, 65536, 262144))
        buffer += stream[position:position + step]
        position += step
        packets, used = parse_packets(buffer)
        del buffer[:used]
        received.extend(packets)
    assert received == sent
    assert not buffer


def test_a_remaining_length_of_five_bytes_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="four bytes"):
        parse_packets(b"\x30\xff\xff\xff\xff\x01")


def test_a_publish_shorter_than_its_topic_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_packets(b"\x32\x04\x00\x09ab")


@pytest.fixture
def topic_root() -> str:
    return f"fmon/v1/w{uuid.uuid4().hex[:8]}"


@pytest.fixture
def publisher(mosquitto: MosquittoServer) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"wire-pub-{uuid.uuid4().hex[:8]}")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def start(mosquitto: MosquittoServer, client_id: str, topic: str, received: Inbox) -> WireSubscriber:
    subscriber = WireSubscriber(BrokerAddress.parse(mosquitto.url), client_id, [topic], received,
                                backoff=(0.1, 0.5))
    subscriber.start()
    assert subscriber.connected.wait(WAIT_S), "no SUBACK from the broker"
    return subscriber


def publish_all(client: mqtt.Client, topic: str, bodies: list[bytes]) -> None:
    infos = [client.publish(topic, body, qos=1) for body in bodies]
    for info in infos:
        info.wait_for_publish(WAIT_S)


def test_unacknowledged_messages_come_back_after_a_lost_connection_and_old_acks_are_ignored(
        mosquitto: MosquittoServer, publisher: mqtt.Client, topic_root: str) -> None:
    received = Inbox()
    client_id = f"wire-{uuid.uuid4().hex[:8]}"
    subscriber = start(mosquitto, client_id, f"{topic_root}/#", received)
    try:
        publish_all(publisher, f"{topic_root}/env/d1/telemetry", [b"%d" % i for i in range(10)])
        first = received.take(10)
        assert [p.payload for p, _ in first] == [b"%d" % i for i in range(10)]
        connection = first[0][1]
        subscriber.ack(connection, [p.mid for p, _ in first[:4]])
        drop_connection(subscriber)
        again = received.take(6)
        assert [p.payload for p, _ in again] == [b"%d" % i for i in range(4, 10)]
        assert {c for _, c in again} == {connection + 1}
        subscriber.ack(connection, [p.mid for p, _ in again])  # the old connection: must not count
        drop_connection(subscriber)
        third = received.take(6)
        assert [p.payload for p, _ in third] == [b"%d" % i for i in range(4, 10)]
        subscriber.ack(connection + 2, [p.mid for p, _ in third])
        drop_connection(subscriber)
        assert subscriber.connected.wait(WAIT_S)
        assert received.none_within(1.0), "acknowledged messages were delivered again"
    finally:
        subscriber.stop()


def test_publishing_from_the_subscriber_reaches_other_clients(mosquitto: MosquittoServer, topic_root: str) -> None:
    received = Inbox()
    listener = start(mosquitto, f"wire-l-{uuid.uuid4().hex[:8]}", f"{topic_root}/ncmd/#", received)
    sender = start(mosquitto, f"wire-s-{uuid.uuid4().hex[:8]}", f"{topic_root}/unused", Inbox())
    try:
        assert sender.publish(f"{topic_root}/ncmd/edge1", b"rebirth", qos=1)
        assert sender.publish(f"{topic_root}/ncmd/edge2", b"rebirth", qos=0)
        got = received.take(2)
        assert sorted(p.topic for p, _ in got) == [f"{topic_root}/ncmd/edge1", f"{topic_root}/ncmd/edge2"]
    finally:
        listener.stop()
        sender.stop()


def test_a_broker_that_is_not_there_is_retried_until_it_is(topic_root: str) -> None:
    broker = MosquittoServer()
    broker.start()
    address = BrokerAddress.parse(broker.url)
    broker.stop()
    received = Inbox()
    subscriber = WireSubscriber(address, f"wire-{uuid.uuid4().hex[:8]}", [f"{topic_root}/#"], received,
                                backoff=(0.1, 0.2))
    subscriber.start()
    try:
        assert not subscriber.connected.wait(0.5)
        assert subscriber._thread.is_alive()
    finally:
        subscriber.stop()
    assert not subscriber._thread.is_alive()


def drop_connection(subscriber: WireSubscriber) -> None:
    """Cut the TCP connection under the client, as a network fault would."""
    sock = subscriber._sock
    assert sock is not None
    subscriber.connected.clear()
    sock.shutdown(socket.SHUT_RDWR)
    assert subscriber.connected.wait(WAIT_S), "the subscriber did not reconnect"
