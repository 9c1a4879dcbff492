"""Sparkplug B: core.sparkplug (topics, payloads, messages) and ingest.sparkplug (the host state machine)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core import sparkplug as spb
from core.domain import DeviceRef, Family, MetricValue, Reading
from core.errors import PayloadError, TopicError
from core.sparkplug import DataType, MessageType, Metric, Payload
from core.sparkplug import sparkplug_b_pb2 as pb
from ingest.decode import PresenceChange
from ingest.sparkplug import SeqGap, SparkplugDecoder, SparkplugResult
from tests.harness import MosquittoServer

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
GROUP, EDGE = "site-1", "edge-1"
GAS_DEFS = spb.metric_defs(Family.GAS, ["lel_pct", "fault", "valve"])
LIFT_DEFS = spb.metric_defs(Family.ELEVATOR, ["floor", "running"], first_alias=10)
GAS = DeviceRef(GROUP, Family.GAS, "gas-1")
LIFT = DeviceRef(GROUP, Family.ELEVATOR, "lift-1")

Message = tuple[str, bytes]
OnMessage = Callable[[mqtt.Client, mqtt.MQTTMessage], None]


class Edge:
    """A minimal edge node: builds its messages with core.sparkplug and counts seq."""

    def __init__(self, group: str = GROUP, edge: str = EDGE, bd_seq: int = 0, now: datetime = NOW) -> None:
        self.group, self.edge, self.bd_seq, self.seq, self.now = group, edge, bd_seq, 0, now

    def nbirth(self) -> Message:
        self.seq = 0
        return self._node(MessageType.NBIRTH, spb.node_birth(self.bd_seq, timestamp=self.now))

    def ndeath(self, bd_seq: int | None = None) -> Message:
        return self._node(MessageType.NDEATH, spb.node_death(self.bd_seq if bd_seq is None else bd_seq))

    def dbirth(self, device: DeviceRef, values: Mapping[str, spb.Value]) -> Message:
        defs = GAS_DEFS if device.family is Family.GAS else LIFT_DEFS
        payload = spb.device_birth(defs, values, family=device.family, seq=self._next(), timestamp=self.now)
        return self._device(MessageType.DBIRTH, device, payload)

    def ddata(self, device: DeviceRef, values: Mapping[str, spb.Value], *, measured_at: datetime | None = None,
              historical: bool = False) -> Message:
        defs = GAS_DEFS if device.family is Family.GAS else LIFT_DEFS
        payload = spb.device_data(defs, values, seq=self._next(), timestamp=self.now, measured_at=measured_at,
                                  historical=historical)
        return self._device(MessageType.DDATA, device, payload)

    def send(self, message_type: MessageType, device: DeviceRef | None, payload: Payload) -> Message:
        """A hand-made message (seq is the caller's business)."""
        if device is None:
            return self._node(message_type, payload)
        return self._device(message_type, device, payload)

    def ddeath(self, device: DeviceRef) -> Message:
        return self._device(MessageType.DDEATH, device, spb.device_death(seq=self._next(), timestamp=self.now))

    def skip(self, count: int) -> None:
        for _ in range(count):
            self._next()

    def _next(self) -> int:
        self.seq = spb.next_seq(self.seq)
        return self.seq

    def _node(self, message_type: MessageType, payload: Payload) -> Message:
        return spb.node_topic(self.group, message_type, self.edge), spb.encode_payload(payload)

    def _device(self, message_type: MessageType, device: DeviceRef, payload: Payload) -> Message:
        topic = spb.device_topic(self.group, message_type, self.edge, device.device_id)
        return topic, spb.encode_payload(payload)


def feed(decoder: SparkplugDecoder, *messages: Message, at: datetime = NOW) -> SparkplugResult:
    """Decode messages in order; return the last result."""
    results = [decoder.decode(topic, payload, at) for topic, payload in messages]
    return results[-1]


def born(edge: Edge, *devices: DeviceRef) -> SparkplugDecoder:
    decoder = SparkplugDecoder()
    feed(decoder, edge.nbirth())
    for device in devices:
        values: dict[str, spb.Value] = {"lel_pct": 1.5, "fault": False, "valve": "open"}
        if device.family is Family.ELEVATOR:
            values = {"floor": 1}
        feed(decoder, edge.dbirth(device, values))
    return decoder


def metrics_of(result: SparkplugResult) -> dict[str, MetricValue]:
    return {name: value for reading in result.readings for name, value in reading.metrics.items()}


def reasons(result: SparkplugResult) -> list[str]:
    return [exc.reason for exc in result.rejections]


def assert_rebirth(result: SparkplugResult, edge: Edge) -> None:
    [(topic, payload)] = result.rebirth
    assert topic == f"spBv1.0/{edge.group}/NCMD/{edge.edge}"
    assert spb.is_rebirth_request(spb.decode_payload(payload))


# --- core.sparkplug: topics ------------------------------------------------------------------


def test_topics_are_built_and_parsed() -> None:
    assert spb.node_topic("s1", MessageType.NBIRTH, "gw-1") == "spBv1.0/s1/NBIRTH/gw-1"
    topic = spb.device_topic("s1", MessageType.DDATA, "gw-1", "env-7")
    assert topic == "spBv1.0/s1/DDATA/gw-1/env-7"
    parsed = spb.parse_topic(topic)
    assert (parsed.group, parsed.message_type, parsed.edge_node, parsed.device_id) == ("s1", "DDATA", "gw-1", "env-7")
    assert str(parsed) == topic
    assert "spBv1.0/s1/DDATA/+/+" in spb.host_subscriptions("s1")
    assert not any("CMD" in f for f in spb.host_subscriptions())


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("spBv1.0/s1/NBIRTH", "bad_topic"),
        ("spBv2.0/s1/NBIRTH/gw", "bad_topic"),
        ("spBv1.0/s1/DDATA/gw/d/extra", "bad_topic"),
        ("spBv1.0/s1/NHELLO/gw", "bad_message_type"),
        ("spBv1.0/s1/NDATA/gw/dev", "bad_topic"),
        ("spBv1.0/s1/DDATA/gw", "bad_topic"),
        ("spBv1.0/s 1/NDATA/gw", "bad_id"),
        ("spBv1.0/s1/DDATA/gw/" + "d" * 65, "bad_id"),
    ],
)
def test_bad_topics_are_refused_with_a_reason(topic: str, reason: str) -> None:
    with pytest.raises(TopicError) as caught:
        spb.parse_topic(topic)
    assert caught.value.reason == reason
    assert topic in str(caught.value)


def test_builders_refuse_bad_ids() -> None:
    with pytest.raises(TopicError, match="edge node id"):
        spb.node_topic("s1", MessageType.NCMD, "gw/1")


# --- core.sparkplug: payloads ----------------------------------------------------------------


def test_payload_round_trip_keeps_every_basic_type() -> None:
    metrics = (
        Metric("i8", 1, DataType.INT8, -5),
        Metric("i16", 2, DataType.INT16, -30000),
        Metric("i32", 3, DataType.INT32, -70000),
        Metric("i64", 4, DataType.INT64, -(2**40)),
        Metric("u8", 5, DataType.UINT8, 200),
        Metric("u32", 6, DataType.UINT32, 2**32 - 1),
        Metric("u64", 7, DataType.UINT64, 2**63 + 5),
        Metric("f", 8, DataType.FLOAT, 3.2),
        Metric("d", 9, DataType.DOUBLE, 0.1, timestamp=1_700_000_000_123, is_historical=True),
        Metric("b", 10, DataType.BOOLEAN, True),
        Metric("s", 11, DataType.STRING, "开"),
        Metric("t", 12, DataType.DATETIME, 1_700_000_000_000),
        Metric("raw", 13, DataType.BYTES, b"\x00\xff"),
        Metric("nothing", 14, DataType.DOUBLE, None, is_transient=True),
    )
    payload = Payload(metrics, timestamp=1_700_000_000_999, seq=255, uuid="u-1", body=b"x")
    assert spb.decode_payload(spb.encode_payload(payload)) == payload


def test_datatype_is_inferred_from_the_value() -> None:
    payload = Payload((Metric("a", value=True), Metric("b", value=7), Metric("c", value=1.5), Metric("d", value="x")))
    decoded = spb.decode_payload(spb.encode_payload(payload))
    assert [m.datatype for m in decoded.metrics] == [DataType.BOOLEAN, DataType.INT64, DataType.DOUBLE, DataType.STRING]
    assert [m.value for m in decoded.metrics] == [True, 7, 1.5, "x"]


def test_signed_integers_decode_from_both_tahu_widths() -> None:
    message = pb.Payload()
    for raw in (0xFFFFFFFF, 0xFF):  # -1 sign-extended to 32 bits (Tahu) or in 8 bits
        metric = message.metrics.add()
        metric.name, metric.datatype, metric.int_value = "i8", DataType.INT8, raw
    decoded = spb.decode_payload(message.SerializeToString())
    assert [m.value for m in decoded.metrics] == [-1, -1]


def test_values_fmon_does_not_use_decode_as_none() -> None:
    message = pb.Payload()
    dataset = message.metrics.add()
    dataset.name, dataset.datatype = "table", DataType.DATASET
    dataset.dataset_value.num_of_columns = 1
    future = message.metrics.add()
    future.name, future.datatype, future.int_value = "new", 99, 5
    largest = message.metrics.add()
    largest.name, largest.datatype, largest.float_value = "max", DataType.FLOAT, 3.4028234663852886e38
    decoded = spb.decode_payload(message.SerializeToString())
    assert [(m.datatype, m.value) for m in decoded.metrics] == [
        (DataType.DATASET, None), (DataType.UNKNOWN, 5), (DataType.FLOAT, 3.4028235e38)]


def test_datatype_enum_matches_the_proto() -> None:
    proto = {number: name for name, number in pb.DataType.items()}
    assert {d.value: d.name.replace("_", "").lower() for d in DataType} == {
        number: name.lower() for number, name in proto.items()
    }


@pytest.mark.parametrize(
    "metric",
    [Metric("x", datatype=DataType.INT8, value=300), Metric("x", datatype=DataType.DOUBLE, value=True),
     Metric("x", datatype=DataType.BOOLEAN, value=1), Metric("x", datatype=DataType.DATASET, value=1)],
)
def test_encoding_refuses_a_value_outside_its_datatype(metric: Metric) -> None:
    with pytest.raises(ValueError, match="metric 'x'"):
        spb.encode_payload(Payload((metric,)))


def test_messages_follow_the_fmon_convention() -> None:
    nbirth = spb.decode_payload(spb.encode_payload(spb.node_birth(7, timestamp=NOW)))
    assert nbirth.seq == 0
    assert nbirth.metric("bdSeq") == Metric("bdSeq", datatype=DataType.INT64, value=7)
    rebirth = Metric("Node Control/Rebirth", datatype=DataType.BOOLEAN, value=False)
    assert nbirth.metric("Node Control/Rebirth") == rebirth
    assert spb.decode_payload(spb.encode_payload(spb.node_death(7))).seq is None

    dbirth = spb.device_birth(GAS_DEFS, {"lel_pct": 2.0}, family=Family.GAS, seq=1, timestamp=NOW)
    assert dbirth.metrics[0] == Metric("fmon/family", datatype=DataType.STRING, value="gas")
    assert [(m.name, m.alias, m.datatype) for m in dbirth.metrics[1:]] == [
        ("lel_pct", 1, DataType.DOUBLE), ("fault", 2, DataType.BOOLEAN), ("valve", 3, DataType.STRING)]
    assert [m.value for m in dbirth.metrics[1:]] == [2.0, None, None]

    ddata = spb.device_data(GAS_DEFS, {"valve": "closed"}, seq=2, timestamp=NOW)
    assert ddata.metrics == (Metric(alias=3, datatype=DataType.STRING, value="closed"),)
    assert spb.millis(NOW) == ddata.timestamp
    assert spb.from_millis(ddata.timestamp) == NOW

    topic, payload = spb.rebirth_command("s1", "gw-1", timestamp=NOW)
    assert topic == "spBv1.0/s1/NCMD/gw-1"
    assert spb.is_rebirth_request(spb.decode_payload(payload))
    with pytest.raises(ValueError, match="no metric 'colour'"):
        spb.metric_defs(Family.ENV, ["colour"])


@pytest.mark.parametrize("data", [b"not protobuf", b"\xff\xff\xff\xff", b"\x12\x05\x0a\x03ab"])
def test_garbage_is_bad_protobuf(data: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        spb.decode_payload(data)
    assert caught.value.reason == "bad_protobuf"


# --- ingest.sparkplug: the host state machine ------------------------------------------------


def test_births_and_data_by_alias_become_readings() -> None:
    edge, decoder = Edge(), SparkplugDecoder()
    nbirth = feed(decoder, edge.nbirth())
    assert nbirth.presence == [PresenceChange(GROUP, True, gateway_id=EDGE)]

    dbirth = feed(decoder, edge.dbirth(GAS, {"lel_pct": 1.5, "fault": False, "valve": "open"}))
    assert dbirth.presence == [PresenceChange(GROUP, True, device=GAS)]
    [birth_reading] = dbirth.readings
    assert birth_reading.device == GAS
    assert birth_reading.ts == NOW
    assert dict(birth_reading.metrics) == {"lel_pct": 1.5, "fault": False, "valve": "open"}

    measured = NOW - timedelta(seconds=3, milliseconds=250)
    data = feed(decoder, edge.ddata(GAS, {"lel_pct": 12.5, "fault": True, "valve": "closed"}, measured_at=measured))
    [reading] = data.readings
    assert (reading.device, reading.ts, reading.historical, reading.seq) == (GAS, measured, False, None)
    assert dict(reading.metrics) == {"lel_pct": 12.5, "fault": True, "valve": "closed"}
    assert [type(v) for v in reading.metrics.values()] == [float, bool, str]
    assert not (data.rejections)
    assert not (data.rebirth)
    assert not (data.gaps)
    assert not (data.presence)


def test_metrics_born_null_are_declared_not_rejected() -> None:
    edge = Edge()
    decoder = born(edge)
    dbirth = feed(decoder, edge.dbirth(GAS, {"lel_pct": 2.0}))  # fault and valve born null
    assert not dbirth.rejections
    assert metrics_of(dbirth) == {"lel_pct": 2.0}
    assert metrics_of(feed(decoder, edge.ddata(GAS, {"valve": "open"}))) == {"valve": "open"}


def test_integers_and_history() -> None:
    edge = Edge()
    decoder = born(edge, LIFT)
    result = feed(decoder, edge.ddata(LIFT, {"floor": -2, "running": True}, measured_at=NOW, historical=True))
    [reading] = result.readings
    assert dict(reading.metrics) == {"floor": -2, "running": True}
    assert isinstance(reading.metrics["floor"], int)
    assert reading.historical


def test_float32_metrics_read_as_their_decimal() -> None:
    edge = Edge()
    decoder = born(edge, GAS)
    payload = Payload((Metric(alias=1, datatype=DataType.FLOAT, value=3.2),), seq=edge.seq + 1)
    edge.skip(1)
    assert metrics_of(feed(decoder, edge.send(MessageType.DDATA, GAS, payload))) == {"lel_pct": 3.2}


def test_one_reading_per_timestamp_and_payload_time_as_default() -> None:
    edge = Edge()
    decoder = born(edge, GAS)
    earlier = spb.millis(NOW - timedelta(minutes=1))
    metrics = (Metric(alias=1, value=1.0, timestamp=earlier), Metric(alias=1, value=2.0), Metric(alias=2, value=True))
    edge.skip(1)
    result = feed(decoder, edge.send(MessageType.DDATA, GAS, Payload(metrics, timestamp=spb.millis(NOW), seq=edge.seq)))
    assert [(r.ts, dict(r.metrics)) for r in result.readings] == [
        (NOW - timedelta(minutes=1), {"lel_pct": 1.0}),
        (NOW, {"lel_pct": 2.0, "fault": True}),
    ]


def test_seq_wraps_from_255_to_0() -> None:
    edge = Edge()
    decoder = born(edge, GAS)
    for i in range(300):
        result = feed(decoder, edge.ddata(GAS, {"lel_pct": float(i % 100)}))
        assert not (result.gaps or result.rebirth or result.rejections), i
    assert edge.seq == 301 % 256


def test_seq_gap_asks_for_a_rebirth_once_per_interval() -> None:
    edge = Edge()
    decoder = born(edge, GAS)  # seq 0 (NBIRTH), 1 (DBIRTH)
    edge.skip(2)
    gap = feed(decoder, edge.ddata(GAS, {"lel_pct": 4.0}))
    assert gap.gaps == [SeqGap(GROUP, EDGE, expected=2, received=4)]
    assert_rebirth(gap, edge)
    assert metrics_of(gap) == {"lel_pct": 4.0}  # the data itself is still used

    edge.skip(1)
    again = feed(decoder, edge.ddata(GAS, {"lel_pct": 5.0}), at=NOW + timedelta(seconds=1))
    assert again.gaps
    assert not again.rebirth
    edge.skip(1)
    later = feed(decoder, edge.ddata(GAS, {"lel_pct": 6.0}), at=NOW + timedelta(seconds=6))
    assert_rebirth(later, edge)

    feed(decoder, edge.nbirth(), edge.dbirth(GAS, {}), at=NOW + timedelta(seconds=7))
    edge.skip(1)
    after_rebirth = feed(decoder, edge.ddata(GAS, {"lel_pct": 7.0}), at=NOW + timedelta(seconds=8))
    assert_rebirth(after_rebirth, edge)  # the node answered, so a new gap asks again at once


def test_unknown_alias_is_rejected_and_asks_for_a_rebirth() -> None:
    edge = Edge()
    decoder = born(edge, GAS)
    edge.skip(1)
    metrics = (Metric(alias=99, datatype=DataType.DOUBLE, value=1.0), Metric(alias=1, value=2.0))
    result = feed(decoder, edge.send(MessageType.DDATA, GAS, Payload(metrics, seq=edge.seq)))
    assert reasons(result) == ["unknown_alias"]
    assert "alias 99" in str(result.rejections[0])
    assert "spBv1.0/site-1/DDATA/edge-1/gas-1" in str(result.rejections[0])
    assert_rebirth(result, edge)
    assert metrics_of(result) == {"lel_pct": 2.0}


def test_data_before_birth_asks_for_a_rebirth() -> None:
    edge, decoder = Edge(), SparkplugDecoder()
    edge.skip(3)
    early = feed(decoder, edge.ddata(GAS, {"lel_pct": 1.0}))
    assert reasons(early) == ["no_birth"]
    assert not early.readings
    assert_rebirth(early, edge)

    feed(decoder, edge.nbirth())
    unborn_device = feed(decoder, edge.ddata(GAS, {"lel_pct": 1.0}))
    assert reasons(unborn_device) == ["no_birth"]
    assert_rebirth(unborn_device, edge)


def test_device_messages_need_their_births() -> None:
    edge, decoder = Edge(), SparkplugDecoder()
    orphan = feed(decoder, edge.dbirth(GAS, {"lel_pct": 1.0}))
    assert reasons(orphan) == ["no_birth"]
    assert_rebirth(orphan, edge)
    feed(decoder, edge.nbirth())
    assert reasons(feed(decoder, edge.ddeath(GAS))) == ["no_birth"]
    unnamed = Payload((Metric("fmon/family", value="gas"), Metric(alias=1, value=1.0)), seq=edge.seq + 1)
    edge.skip(1)
    assert reasons(feed(decoder, edge.send(MessageType.DBIRTH, GAS, unnamed))) == ["missing_name"]


def test_device_death_and_node_death_mark_offline_and_stale() -> None:
    edge = Edge(bd_seq=3)
    decoder = born(edge, GAS, LIFT)
    assert decoder.devices(GROUP, EDGE) == [GAS, LIFT]

    ddeath = feed(decoder, edge.ddeath(GAS))
    assert ddeath.presence == [PresenceChange(GROUP, False, device=GAS)]
    assert ddeath.stale == [GAS]
    assert reasons(feed(decoder, edge.ddata(GAS, {"lel_pct": 1.0}))) == ["no_birth"]

    stale_will = feed(decoder, edge.ndeath(bd_seq=2))  # the Will of an earlier connection
    assert reasons(stale_will) == ["stale_death"]
    assert not stale_will.presence
    ndeath = feed(decoder, edge.ndeath())
    assert ndeath.presence == [PresenceChange(GROUP, False, gateway_id=EDGE), PresenceChange(GROUP, False, device=LIFT)]
    assert ndeath.stale == [LIFT]
    assert decoder.devices(GROUP, EDGE) == []
    assert reasons(feed(decoder, edge.ddata(LIFT, {"floor": 2}))) == ["no_birth"]


def test_invalid_protobuf_is_refused() -> None:
    decoder = SparkplugDecoder()
    with pytest.raises(PayloadError) as caught:
        decoder.decode(f"spBv1.0/{GROUP}/DDATA/{EDGE}/gas-1", b"\xff\x00garbage", NOW)
    assert caught.value.reason == "bad_protobuf"
    with pytest.raises(PayloadError) as too_big:
        decoder.decode(f"spBv1.0/{GROUP}/NDATA/{EDGE}", b"\x00" * 300_000, NOW)
    assert too_big.value.reason == "oversized"
    with pytest.raises(TopicError):
        decoder.decode("spBv1.0/site-1/NDATA", b"", NOW)


def test_values_are_validated_against_the_schema() -> None:
    edge = Edge()
    decoder = born(edge, GAS)
    result = feed(decoder, edge.ddata(GAS, {"lel_pct": 250.0, "valve": "closed"}))
    assert reasons(result) == ["bad_value"]
    assert "lel_pct=250.0 is above its valid maximum" in str(result.rejections[0])
    assert metrics_of(result) == {"valve": "closed"}


@pytest.mark.parametrize(
    ("metric", "reason"),
    [
        (Metric("colour", value="red"), "unknown_metric"),
        (Metric(alias=2, datatype=DataType.BOOLEAN, value=None), "null_value"),
        (Metric(alias=3, value=7), "bad_value"),
        (Metric(alias=1, value=1.0, timestamp=spb.millis(NOW + timedelta(hours=1))), "future_timestamp"),
        (Metric(alias=1, value=1.0, timestamp=2**63), "bad_timestamp"),
        (Metric(alias=1, value=1.0, timestamp=0), "ancient_timestamp"),
    ],
)
def test_bad_metrics_are_rejected_with_a_reason(metric: Metric, reason: str) -> None:
    edge = Edge()
    decoder = born(edge, GAS)
    edge.skip(1)
    result = feed(decoder, edge.send(MessageType.DDATA, GAS, Payload((metric,), seq=edge.seq)))
    assert reasons(result) == [reason]
    assert not result.readings
    assert not result.rebirth


@pytest.mark.parametrize(("family_metric", "reason"), [(None, "missing_family"), ("toaster", "bad_family")])
def test_device_birth_needs_a_known_family(family_metric: str | None, reason: str) -> None:
    edge = Edge()
    decoder = born(edge)
    metrics: tuple[Metric, ...] = (Metric("lel_pct", 1, DataType.DOUBLE, 1.0),)
    if family_metric is not None:
        metrics = (Metric("fmon/family", value=family_metric), *metrics)
    dbirth = feed(decoder, edge.send(MessageType.DBIRTH, GAS, Payload(metrics, seq=1)))
    assert reasons(dbirth) == [reason]
    assert not dbirth.readings
    assert not dbirth.presence
    edge.skip(1)
    data = feed(decoder, edge.ddata(GAS, {"lel_pct": 2.0}))
    assert reasons(data) == [reason]
    assert not data.rebirth


def test_commands_and_node_metrics_are_ignored() -> None:
    edge = Edge()
    decoder = born(edge)
    command = spb.rebirth_command(GROUP, EDGE, timestamp=NOW)
    assert feed(decoder, command) == SparkplugResult()
    ndata = Payload((Metric("Node Control/Reboot", value=False), Metric("uptime_s", value=5)), seq=1)
    assert feed(decoder, edge.send(MessageType.NDATA, None, ndata)) == SparkplugResult()


# --- over a real broker ----------------------------------------------------------------------


def test_a_gap_seen_over_mosquitto_makes_the_edge_node_rebirth(mosquitto: MosquittoServer, unique_id: str) -> None:
    edge = Edge(group=unique_id, now=datetime.now(UTC))
    ncmd = spb.node_topic(unique_id, MessageType.NCMD, EDGE)
    host, readings, errors = _host(mosquitto, unique_id)
    commands: queue.Queue[Message] = queue.Queue()
    node = _client(mosquitto, f"{unique_id}-edge", [ncmd], lambda _c, m: commands.put((m.topic, bytes(m.payload))))
    try:
        for message in (edge.nbirth(), edge.dbirth(GAS, {"lel_pct": 1.0}), edge.ddata(GAS, {"lel_pct": 2.0})):
            node.publish(*message, qos=1)
        edge.skip(2)
        node.publish(*edge.ddata(GAS, {"lel_pct": 3.0}), qos=1)
        topic, payload = commands.get(timeout=5)
    finally:
        for client in (node, host):
            client.disconnect()
            client.loop_stop()
    assert not errors
    assert topic == ncmd
    assert spb.is_rebirth_request(spb.decode_payload(payload))
    assert [dict(r.metrics) for r in readings] == [{"lel_pct": 1.0}, {"lel_pct": 2.0}, {"lel_pct": 3.0}]


def _host(broker: MosquittoServer, group: str) -> tuple[mqtt.Client, list[Reading], list[Exception]]:
    """fmon's side: decode what arrives, publish the decoder's rebirth requests."""
    decoder, readings, errors = SparkplugDecoder(), list[Reading](), list[Exception]()

    def on_message(client: mqtt.Client, message: mqtt.MQTTMessage) -> None:
        try:
            result = decoder.decode(message.topic, bytes(message.payload), datetime.now(UTC))
        except Exception as exc:  # surfaced by the test, not lost in paho's thread
            errors.append(exc)
            return
        readings.extend(result.readings)
        errors.extend(result.rejections)
        for topic, payload in result.rebirth:
            client.publish(topic, payload, qos=1)

    client = _client(broker, f"{group}-host", list(spb.host_subscriptions(group)), on_message)
    return client, readings, errors


def _client(broker: MosquittoServer, client_id: str, topics: list[str], on_message: OnMessage) -> mqtt.Client:
    """A connected paho client (VERSION2 callbacks) whose subscriptions are acknowledged."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_message = lambda c, _userdata, m: on_message(c, m)
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    client.subscribe([(topic, 1) for topic in topics])
    assert subscribed.wait(5), f"no SUBACK for {client_id}"
    return client
