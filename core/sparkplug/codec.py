"""Sparkplug B payloads as frozen values, and their protobuf encoding.

`Payload` and `Metric` mirror the wire message with plain Python values: integers come out
signed or unsigned as their datatype says, 32-bit floats come out as the shortest decimal
that round-trips. Values fmon does not use (datasets, templates, extensions, property sets)
decode as `None`, with the datatype kept so callers can say why. This module is not about
sessions, sequence numbers or metric names: that is the host application's business
(ingest.sparkplug).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

# protobuf ships no type information; the generated .pyi types the message classes.
from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]

from core.errors import PayloadError
from core.sparkplug import sparkplug_b_pb2 as pb

Value = int | float | bool | str | bytes

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class DataType(IntEnum):
    """Sparkplug B datatypes (the `DataType` enum of sparkplug_b.proto)."""

    UNKNOWN = 0
    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14
    UUID = 15
    DATASET = 16
    BYTES = 17
    FILE = 18
    TEMPLATE = 19
    PROPERTY_SET = 20
    PROPERTY_SET_LIST = 21
    INT8_ARRAY = 22
    INT16_ARRAY = 23
    INT32_ARRAY = 24
    INT64_ARRAY = 25
    UINT8_ARRAY = 26
    UINT16_ARRAY = 27
    UINT32_ARRAY = 28
    UINT64_ARRAY = 29
    FLOAT_ARRAY = 30
    DOUBLE_ARRAY = 31
    BOOLEAN_ARRAY = 32
    STRING_ARRAY = 33
    DATETIME_ARRAY = 34


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric of a payload. `value` None means null (or a kind fmon does not decode).

    `timestamp` is in milliseconds since the epoch, as on the wire.
    """

    name: str | None = None
    alias: int | None = None
    datatype: DataType | None = None
    value: Value | None = None
    timestamp: int | None = None
    is_historical: bool = False
    is_transient: bool = False


@dataclass(frozen=True, slots=True)
class Payload:
    """A Sparkplug B payload; `timestamp` in ms since the epoch, `seq` 0-255 (none in NDEATH)."""

    metrics: tuple[Metric, ...] = ()
    timestamp: int | None = None
    seq: int | None = None
    uuid: str | None = None
    body: bytes | None = None

    def metric(self, name: str) -> Metric | None:
        """The first metric called `name`, if any."""
        return next((m for m in self.metrics if m.name == name), None)


def millis(ts: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (Sparkplug timestamps)."""
    return (ts - EPOCH) // _MS


def from_millis(ms: int) -> datetime:
    """The UTC datetime of a Sparkplug timestamp; raises OverflowError if out of range."""
    return EPOCH + ms * _MS


# (oneof field, bit width, signed) for each datatype fmon encodes and decodes.
_INTEGERS: dict[DataType, tuple[str, int, bool]] = {
    DataType.INT8: ("int_value", 8, True),
    DataType.INT16: ("int_value", 16, True),
    DataType.INT32: ("int_value", 32, True),
    DataType.INT64: ("long_value", 64, True),
    DataType.UINT8: ("int_value", 8, False),
    DataType.UINT16: ("int_value", 16, False),
    DataType.UINT32: ("int_value", 32, False),
    DataType.UINT64: ("long_value", 64, False),
    DataType.DATETIME: ("long_value", 64, False),
}
_OTHERS: dict[DataType, tuple[str, type | tuple[type, ...]]] = {
    DataType.FLOAT: ("float_value", (int, float)),
    DataType.DOUBLE: ("double_value", (int, float)),
    DataType.BOOLEAN: ("boolean_value", bool),
    DataType.STRING: ("string_value", str),
    DataType.TEXT: ("string_value", str),
    DataType.UUID: ("string_value", str),
    DataType.BYTES: ("bytes_value", bytes),
    DataType.FILE: ("bytes_value", bytes),
}
_UNDECODED = frozenset({"dataset_value", "template_value", "extension_value"})


def encode_payload(payload: Payload) -> bytes:
    """Serialize `payload`; raises ValueError for a value that does not fit its datatype."""
    message = pb.Payload()
    for field in ("timestamp", "seq", "uuid", "body"):
        if (value := getattr(payload, field)) is not None:
            setattr(message, field, value)
    for metric in payload.metrics:
        _encode_metric(message.metrics.add(), metric)
    return bytes(message.SerializeToString())


def decode_payload(data: bytes) -> Payload:
    """Parse a Sparkplug B payload; raises `PayloadError("bad_protobuf")` for anything else."""
    message = pb.Payload()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise PayloadError("bad_protobuf", f"not a Sparkplug B payload: {exc}") from None
    metrics: Sequence[pb.Payload.Metric] = message.metrics
    return Payload(
        metrics=tuple(_decode_metric(m) for m in metrics),
        timestamp=message.timestamp if message.HasField("timestamp") else None,
        seq=message.seq if message.HasField("seq") else None,
        uuid=message.uuid if message.HasField("uuid") else None,
        body=message.body if message.HasField("body") else None,
    )


def infer_datatype(value: Value) -> DataType:
    """The datatype fmon uses for a Python value when none is given."""
    if isinstance(value, bool):
        return DataType.BOOLEAN
    if isinstance(value, int):
        return DataType.INT64
    if isinstance(value, float):
        return DataType.DOUBLE
    return DataType.STRING if isinstance(value, str) else DataType.BYTES


def _encode_metric(target: pb.Payload.Metric, metric: Metric) -> None:
    if metric.name is not None:
        target.name = metric.name
    if metric.alias is not None:
        target.alias = metric.alias
    if metric.timestamp is not None:
        target.timestamp = metric.timestamp
    if metric.is_historical:
        target.is_historical = True
    if metric.is_transient:
        target.is_transient = True
    datatype = metric.datatype
    if datatype is None and metric.value is not None:
        datatype = infer_datatype(metric.value)
    if datatype is not None:
        target.datatype = int(datatype)
    if metric.value is None or datatype is None:
        target.is_null = True
        return
    field, wire_value = _wire_value(metric, datatype, metric.value)
    setattr(target, field, wire_value)


def _wire_value(metric: Metric, datatype: DataType, value: Value) -> tuple[str, Value]:
    what = f"metric {metric.name or metric.alias!r} ({datatype.name})"
    if datatype in _INTEGERS:
        field, bits, signed = _INTEGERS[datatype]
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{what}: {value!r} is not an integer in [{low}, {high}]")
        # Negative numbers travel as two's complement of the field's width, as Eclipse Tahu does.
        return field, value & ((1 << (32 if field == "int_value" else 64)) - 1)
    if datatype not in _OTHERS:
        raise ValueError(f"{what}: fmon does not encode {datatype.name} values")
    field, accepted = _OTHERS[datatype]
    if isinstance(value, bool) != (datatype is DataType.BOOLEAN) or not isinstance(value, accepted):
        raise ValueError(f"{what}: {value!r} is not a {datatype.name} value")
    return field, value


def _decode_metric(m: pb.Payload.Metric) -> Metric:
    datatype = _datatype(m.datatype) if m.HasField("datatype") else None
    return Metric(
        name=m.name if m.HasField("name") else None,
        alias=m.alias if m.HasField("alias") else None,
        datatype=datatype,
        value=None if m.is_null else _decode_value(m, datatype),
        timestamp=m.timestamp if m.HasField("timestamp") else None,
        is_historical=m.is_historical,
        is_transient=m.is_transient,
    )


def _decode_value(m: pb.Payload.Metric, datatype: DataType | None) -> Value | None:
    field: str | None = m.WhichOneof("value")
    if field is None or field in _UNDECODED:
        return None
    raw: Value = getattr(m, field)
    if field in ("int_value", "long_value") and isinstance(raw, int):
        return _integer(raw, datatype)
    if field == "float_value" and isinstance(raw, float):
        return _shortest_float32(raw)
    return raw


def _integer(raw: int, datatype: DataType | None) -> int:
    spec = _INTEGERS.get(datatype) if datatype is not None else None
    if spec is None or not spec[2]:
        return raw
    bits = spec[1]
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >= 1 << (bits - 1) else raw


def _shortest_float32(value: float) -> float:
    """The shortest decimal that is the same 32-bit float (3.2, not 3.200000047683716)."""
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        try:
            if struct.pack("<f", candidate) == packed:
                return candidate
        except OverflowError:  # rounding up past the largest float32
            continue
    return value


def _datatype(raw: int) -> DataType:
    try:
        return DataType(raw)
    except ValueError:
        return DataType.UNKNOWN
