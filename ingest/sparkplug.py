"""Sparkplug B host-application decoding: one message in, readings and session effects out.

`SparkplugDecoder` keeps the state Sparkplug asks of a host application, per edge node: the
`bdSeq` of its session, the next expected `seq` (0-255, wrapping) and, per device, the
alias → metric-name map and the fmon family of its DBIRTH (docs/sparkplug.md has the
convention). It is pure: no I/O, no clock (the receive time is passed in). It is not
thread-safe, and every message of an edge node must reach the same decoder, so ingest
workers must own disjoint groups (sites), never share a subscription round-robin.

`decode()` raises `ContractError` only when the message as a whole is unusable before any
state changes (bad topic, oversized, not protobuf). Everything else lands in the result:
refused parts in `rejections` (dead-letter them), NCMD rebirth requests in `rebirth`
(publish them), sequence gaps in `gaps` (count them), so one bad metric never costs the
good ones, and a rebirth is never lost to an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core import sparkplug as spb
from core.domain import DeviceRef, Family, MetricValue, Reading
from core.errors import PayloadError
from core.schema import metric_spec
from core.sparkplug import MessageType, SparkplugTopic
from ingest.decode import MAX_AGE, MAX_FUTURE, MAX_PAYLOAD_BYTES, PresenceChange

DEFAULT_REBIRTH_INTERVAL = timedelta(seconds=5)

NodeKey = tuple[str, str]  # (group, edge node)


@dataclass(frozen=True, slots=True)
class SeqGap:
    """A message of an edge node arrived with `received` where `expected` was due."""

    group: str
    edge_node: str
    expected: int
    received: int


@dataclass(slots=True)
class SparkplugResult:
    """What one Sparkplug message means for fmon.

    - `readings`: validated readings (site = group, device id = Sparkplug device id);
    - `presence`: node (gateway) and device online/offline changes;
    - `stale`: devices whose last values are stale now (their node or the device died);
    - `rebirth`: (NCMD topic, payload) pairs to publish, asking edge nodes to rebirth;
    - `rejections`: refused parts of the message, each with a reason, to dead-letter;
    - `gaps`: sequence gaps seen (the message itself was still used).
    """

    readings: list[Reading] = field(default_factory=list)
    presence: list[PresenceChange] = field(default_factory=list)
    stale: list[DeviceRef] = field(default_factory=list)
    rebirth: list[tuple[str, bytes]] = field(default_factory=list)
    rejections: list[PayloadError] = field(default_factory=list)
    gaps: list[SeqGap] = field(default_factory=list)


@dataclass(slots=True)
class _Device:
    """A device of the current node session: its ref, or why its DBIRTH was refused."""

    ref: DeviceRef | PayloadError
    aliases: dict[int, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Node:
    """An edge node session, from NBIRTH to NDEATH."""

    bd_seq: int | None
    next_seq: int | None
    devices: dict[str, _Device] = field(default_factory=dict)


@dataclass(slots=True)
class _Message:
    """One message being decoded, and the result it builds."""

    topic: SparkplugTopic
    payload: spb.Payload
    received_at: datetime
    result: SparkplugResult

    @property
    def node_key(self) -> NodeKey:
        return self.topic.group, self.topic.edge_node

    @property
    def device_id(self) -> str:
        assert self.topic.device_id is not None, "device-level topics carry a device id"
        return self.topic.device_id

    def reject(self, reason: str, detail: str) -> None:
        self.result.rejections.append(PayloadError(reason, f"{self.topic}: {detail}"))


class SparkplugDecoder:
    """The Sparkplug B host-application state machine of one ingest worker."""

    def __init__(self, *, rebirth_interval: timedelta = DEFAULT_REBIRTH_INTERVAL,
                 max_future: timedelta = MAX_FUTURE, max_age: timedelta = MAX_AGE) -> None:
        """`rebirth_interval`: the least time between two rebirth requests to one edge node.

        `max_future` and `max_age` bound metric timestamps around the time of receipt, as
        for JSON readings (ingest.decode).
        """
        self._rebirth_interval = rebirth_interval
        self._max_future, self._max_age = max_future, max_age
        self._nodes: dict[NodeKey, _Node] = {}
        self._rebirth_at: dict[NodeKey, datetime] = {}
        self._handlers: dict[MessageType, Callable[[_Message], None]] = {
            MessageType.NBIRTH: self._node_birth,
            MessageType.NDATA: self._node_data,
            MessageType.NDEATH: self._node_death,
            MessageType.DBIRTH: self._device_birth,
            MessageType.DDATA: self._device_data,
            MessageType.DDEATH: self._device_death,
        }

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> SparkplugResult:
        """Decode one message received at `received_at` (aware UTC).

        Raises `TopicError` for a topic outside `spBv1.0/…` and `PayloadError` (`oversized`,
        `bad_protobuf`) for an unusable payload; NCMD/DCMD give an empty result.
        """
        parsed = spb.parse_topic(topic)
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PayloadError("oversized", f"{topic}: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
        result = SparkplugResult()
        if not parsed.message_type.is_command:
            message = _Message(parsed, spb.decode_payload(payload), received_at, result)
            self._handlers[parsed.message_type](message)
        return result

    def devices(self, group: str, edge_node: str) -> list[DeviceRef]:
        """The devices currently born under an edge node (empty if the node is not online)."""
        node = self._nodes.get((group, edge_node))
        refs = [d.ref for d in node.devices.values()] if node else []
        return [ref for ref in refs if isinstance(ref, DeviceRef)]

    def _node_birth(self, msg: _Message) -> None:
        # A new session: devices and aliases of the old one are void until their DBIRTHs.
        seq = msg.payload.seq
        self._nodes[msg.node_key] = _Node(_bd_seq(msg.payload), None if seq is None else spb.next_seq(seq))
        self._rebirth_at.pop(msg.node_key, None)  # the node answered; ask again if needed
        msg.result.presence.append(PresenceChange(msg.topic.group, True, gateway_id=msg.topic.edge_node))

    def _node_data(self, msg: _Message) -> None:
        # Node-level metrics are not part of fmon's convention; only the session is checked.
        self._session(msg)

    def _node_death(self, msg: _Message) -> None:
        node, bd_seq = self._nodes.get(msg.node_key), _bd_seq(msg.payload)
        if node is not None and None not in (node.bd_seq, bd_seq) and node.bd_seq != bd_seq:
            msg.reject("stale_death", f"NDEATH bdSeq {bd_seq} is not the current session's {node.bd_seq}")
            return
        self._nodes.pop(msg.node_key, None)
        msg.result.presence.append(PresenceChange(msg.topic.group, False, gateway_id=msg.topic.edge_node))
        for device in node.devices.values() if node else ():
            _went_offline(msg, device)

    def _device_birth(self, msg: _Message) -> None:
        node = self._session(msg)
        if node is None:
            return
        device = _born_device(msg)
        node.devices[msg.device_id] = device
        if isinstance(device.ref, PayloadError):
            msg.reject(device.ref.reason, str(device.ref))
            return
        msg.result.presence.append(PresenceChange(device.ref.site, True, device=device.ref))
        # A birth declares every metric; one born null has no value yet, which is no error.
        named = [(m.name, m) for m in msg.payload.metrics
                 if m.name is not None and m.name != spb.FAMILY_METRIC and m.value is not None]
        self._add_readings(msg, device.ref, named)

    def _device_data(self, msg: _Message) -> None:
        node = self._session(msg)
        if node is None:
            return
        device = node.devices.get(msg.device_id)
        if device is None:
            msg.reject("no_birth", f"DDATA before the DBIRTH of device {msg.device_id!r}")
            self._request_rebirth(msg)
        elif isinstance(device.ref, PayloadError):
            refusal = device.ref
            msg.reject(refusal.reason, f"device {msg.device_id!r} was refused at its DBIRTH ({refusal})")
        else:
            self._add_readings(msg, device.ref, self._resolve_aliases(msg, device))

    def _device_death(self, msg: _Message) -> None:
        node = self._session(msg)
        if node is None:
            return
        device = node.devices.pop(msg.device_id, None)
        if device is None:
            msg.reject("no_birth", f"DDEATH of device {msg.device_id!r}, which was never born")
        else:
            _went_offline(msg, device)

    def _session(self, msg: _Message) -> _Node | None:
        """The node's session with the message's seq accounted for, or None (and a rebirth)."""
        node = self._nodes.get(msg.node_key)
        if node is None:
            msg.reject("no_birth", f"{msg.topic.message_type.value} before the edge node's NBIRTH")
            self._request_rebirth(msg)
            return None
        seq = msg.payload.seq
        if seq is not None:
            if node.next_seq is not None and seq != node.next_seq:
                msg.result.gaps.append(SeqGap(*msg.node_key, expected=node.next_seq, received=seq))
                self._request_rebirth(msg)
            node.next_seq = spb.next_seq(seq)
        return node

    def _resolve_aliases(self, msg: _Message, device: _Device) -> list[tuple[str, spb.Metric]]:
        """(name, metric) pairs; unknown aliases are rejected and ask for a rebirth."""
        named: list[tuple[str, spb.Metric]] = []
        for metric in msg.payload.metrics:
            name = metric.name
            if name is None and metric.alias is not None:
                name = device.aliases.get(metric.alias)
            if name is None:
                msg.reject("unknown_alias", f"alias {metric.alias} is not in the DBIRTH of {msg.device_id!r}")
                self._request_rebirth(msg)
            else:
                named.append((name, metric))
        return named

    def _add_readings(self, msg: _Message, device: DeviceRef, metrics: Iterable[tuple[str, spb.Metric]]) -> None:
        """Validate metrics against the schema; one reading per (timestamp, historical)."""
        groups: dict[tuple[datetime, bool], dict[str, MetricValue]] = {}
        for name, metric in metrics:
            try:
                value = _checked_value(device, name, metric)
                ts = self._timestamp(device, metric, msg)
            except PayloadError as exc:
                msg.reject(exc.reason, str(exc))
                continue
            groups.setdefault((ts, metric.is_historical), {})[name] = value
        for (ts, historical), values in groups.items():
            msg.result.readings.append(Reading(device, ts, values, historical=historical))

    def _timestamp(self, device: DeviceRef, metric: spb.Metric, msg: _Message) -> datetime:
        """The metric's timestamp, else the payload's, else the time of receipt."""
        ms = metric.timestamp if metric.timestamp is not None else msg.payload.timestamp
        if ms is None:
            return msg.received_at
        try:
            ts = spb.from_millis(ms)
        except OverflowError:
            raise PayloadError("bad_timestamp", f"{device.key}: timestamp {ms} ms is out of range") from None
        if ts > msg.received_at + self._max_future:
            raise PayloadError("future_timestamp", f"{device.key}: timestamp {ts.isoformat()} is in the future")
        if ts < msg.received_at - self._max_age:
            raise PayloadError("ancient_timestamp", f"{device.key}: timestamp {ts.isoformat()} is too old "
                               f"(a gateway clock fault?)")
        return ts

    def _request_rebirth(self, msg: _Message) -> None:
        """Ask the edge node to rebirth, at most once per `rebirth_interval` until it does."""
        last = self._rebirth_at.get(msg.node_key)
        if last is not None and msg.received_at - last < self._rebirth_interval:
            return
        self._rebirth_at[msg.node_key] = msg.received_at
        group, edge_node = msg.node_key
        msg.result.rebirth.append(spb.rebirth_command(group, edge_node, timestamp=msg.received_at))


def _born_device(msg: _Message) -> _Device:
    """The device a DBIRTH declares: its family, and its aliases bound to metric names."""
    try:
        device = _Device(DeviceRef(msg.topic.group, _family(msg.payload), msg.device_id))
    except PayloadError as exc:
        return _Device(exc)
    for metric in msg.payload.metrics:
        if metric.name is None:
            msg.reject("missing_name", f"a DBIRTH metric (alias {metric.alias}) has no name")
        elif metric.alias is not None:
            device.aliases[metric.alias] = metric.name
    return device


def _family(payload: spb.Payload) -> Family:
    metric = payload.metric(spb.FAMILY_METRIC)
    if metric is None or metric.value is None:
        raise PayloadError("missing_family", f"DBIRTH has no String metric {spb.FAMILY_METRIC!r}")
    try:
        return Family(metric.value if isinstance(metric.value, str) else "")
    except ValueError:
        choices = ", ".join(f.value for f in Family)
        raise PayloadError("bad_family", f"{spb.FAMILY_METRIC} {metric.value!r} is not one of {choices}") from None


def _checked_value(device: DeviceRef, name: str, metric: spb.Metric) -> MetricValue:
    spec = metric_spec(device.family, name)
    if spec is None:
        raise PayloadError("unknown_metric", f"{device.key}: {device.family.value} has no metric {name!r}")
    if metric.value is None:
        kind = metric.datatype.name if metric.datatype is not None else "no datatype"
        raise PayloadError("null_value", f"{device.key}: {name} has no value fmon can use ({kind})")
    try:
        return spec.check(metric.value)
    except ValueError as exc:
        raise PayloadError("bad_value", f"{device.key}: {exc}") from None


def _bd_seq(payload: spb.Payload) -> int | None:
    metric = payload.metric(spb.BD_SEQ)
    value = metric.value if metric is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _went_offline(msg: _Message, device: _Device) -> None:
    if isinstance(device.ref, DeviceRef):
        msg.result.presence.append(PresenceChange(device.ref.site, False, device=device.ref))
        msg.result.stale.append(device.ref)
