"""Building the Sparkplug B messages of fmon's contract: births, data, deaths, rebirth requests.

Edge nodes (and fmon's simulators, which may import only core) use these to speak the fmon
convention (docs/sparkplug.md): each DBIRTH names the device's family in a String metric
`fmon/family`, births bind fmon metric names (core.schema) to aliases, and data messages
carry aliases only. Timestamps are passed in; nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from core.domain import Family
from core.schema import FAMILY_METRICS, MetricType, metric_spec
from core.sparkplug.codec import DataType, Metric, Payload, Value, encode_payload, millis
from core.sparkplug.topics import MessageType, node_topic

BD_SEQ = "bdSeq"
NODE_CONTROL_PREFIX = "Node Control/"
REBIRTH = "Node Control/Rebirth"
FAMILY_METRIC = "fmon/family"
SEQ_MODULUS = 256

SCHEMA_DATATYPES: dict[MetricType, DataType] = {
    "number": DataType.DOUBLE,
    "integer": DataType.INT64,
    "boolean": DataType.BOOLEAN,
    "enum": DataType.STRING,
}


@dataclass(frozen=True, slots=True)
class MetricDef:
    """A metric a device declares in its DBIRTH: fmon metric name, alias, datatype."""

    name: str
    alias: int
    datatype: DataType


def metric_defs(family: Family, names: Iterable[str] | None = None, *, first_alias: int = 1) -> dict[str, MetricDef]:
    """Definitions of `family`'s metrics (all by default), aliases counted from `first_alias`.

    Datatypes follow core.schema: numbers are Double, integers Int64, booleans Boolean and
    enumerations String. Raises ValueError for a name the family does not have.
    """
    wanted = [spec.name for spec in FAMILY_METRICS[family]] if names is None else list(names)
    defs: dict[str, MetricDef] = {}
    for alias, name in enumerate(wanted, start=first_alias):
        spec = metric_spec(family, name)
        if spec is None:
            raise ValueError(f"family {family.value} has no metric {name!r}")
        defs[name] = MetricDef(name, alias, SCHEMA_DATATYPES[spec.type])
    return defs


def next_seq(seq: int) -> int:
    """The sequence number after `seq`: 0-255, wrapping."""
    return (seq + 1) % SEQ_MODULUS


def node_birth(bd_seq: int, *, timestamp: datetime, metrics: Iterable[Metric] = ()) -> Payload:
    """An NBIRTH: seq 0, the session's `bdSeq`, and a writable `Node Control/Rebirth`."""
    control = (
        Metric(BD_SEQ, datatype=DataType.INT64, value=bd_seq),
        Metric(REBIRTH, datatype=DataType.BOOLEAN, value=False),
    )
    return Payload(metrics=(*control, *metrics), timestamp=millis(timestamp), seq=0)


def node_death(bd_seq: int, *, timestamp: datetime | None = None) -> Payload:
    """An NDEATH (normally the MQTT Will): the `bdSeq` of the NBIRTH it ends, and no seq."""
    return Payload(
        metrics=(Metric(BD_SEQ, datatype=DataType.INT64, value=bd_seq),),
        timestamp=None if timestamp is None else millis(timestamp),
    )


def device_birth(defs: Mapping[str, MetricDef], values: Mapping[str, Value], *, family: Family,
                 seq: int, timestamp: datetime) -> Payload:
    """A DBIRTH: `fmon/family`, then every defined metric with name, alias, datatype and value.

    A defined metric without a value in `values` is born null.
    """
    family_metric = Metric(FAMILY_METRIC, datatype=DataType.STRING, value=Family(family).value)
    born = tuple(Metric(d.name, d.alias, d.datatype, values.get(d.name)) for d in defs.values())
    return Payload(metrics=(family_metric, *born), timestamp=millis(timestamp), seq=seq)


def device_data(defs: Mapping[str, MetricDef], values: Mapping[str, Value], *, seq: int,
                timestamp: datetime, measured_at: datetime | None = None,
                historical: bool = False) -> Payload:
    """A DDATA with aliases only (no names); `measured_at` stamps each metric if given.

    Raises KeyError for a metric name missing from `defs`.
    """
    stamp = None if measured_at is None else millis(measured_at)
    metrics = tuple(
        Metric(alias=defs[name].alias, datatype=defs[name].datatype, value=value,
               timestamp=stamp, is_historical=historical)
        for name, value in values.items()
    )
    return Payload(metrics=metrics, timestamp=millis(timestamp), seq=seq)


def device_death(*, seq: int, timestamp: datetime) -> Payload:
    """A DDEATH: the device is gone; its values are stale until the next DBIRTH."""
    return Payload(timestamp=millis(timestamp), seq=seq)


def rebirth_request(*, timestamp: datetime) -> Payload:
    """The NCMD a host application sends to ask an edge node to publish all its births again."""
    metric = Metric(REBIRTH, datatype=DataType.BOOLEAN, value=True)
    return Payload(metrics=(metric,), timestamp=millis(timestamp))


def rebirth_command(group: str, edge_node: str, *, timestamp: datetime) -> tuple[str, bytes]:
    """Topic and encoded payload of the NCMD asking `edge_node` of `group` to rebirth."""
    topic = node_topic(group, MessageType.NCMD, edge_node)
    return topic, encode_payload(rebirth_request(timestamp=timestamp))


def is_rebirth_request(payload: Payload) -> bool:
    """Whether an NCMD payload asks for a rebirth (what an edge node checks)."""
    metric = payload.metric(REBIRTH)
    return metric is not None and metric.value is True
