"""Sparkplug B topics: `spBv1.0/{group}/{message type}/{edge node}[/{device}]`.

fmon maps the group to the site, so group, edge node and device ids follow the v1 id rule
(`[A-Za-z0-9_-]{1,64}`, core.domain.validate_id), a stricter rule than Sparkplug's own.
The parser and the builders raise `TopicError` with a reason code; the host application's
`STATE` topic is outside this module (fmon does not parse it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from core.domain import validate_id
from core.errors import TopicError

NAMESPACE = "spBv1.0"


class MessageType(StrEnum):
    """The Sparkplug B message types fmon understands (the topic's third level)."""

    NBIRTH = "NBIRTH"
    NDATA = "NDATA"
    NDEATH = "NDEATH"
    NCMD = "NCMD"
    DBIRTH = "DBIRTH"
    DDATA = "DDATA"
    DDEATH = "DDEATH"
    DCMD = "DCMD"

    @property
    def is_device(self) -> bool:
        """Device-level messages carry a fifth topic level, the device id."""
        return self.startswith("D")

    @property
    def is_command(self) -> bool:
        """Commands go from host applications to edge nodes, never the other way."""
        return self in (MessageType.NCMD, MessageType.DCMD)


@dataclass(frozen=True, slots=True)
class SparkplugTopic:
    """A valid Sparkplug B topic; `device_id` is set exactly for device-level messages."""

    group: str
    message_type: MessageType
    edge_node: str
    device_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "message_type", _message_type(self.message_type))
        _check_id(self.group, "group id")
        _check_id(self.edge_node, "edge node id")
        if self.message_type.is_device != (self.device_id is not None):
            need = "needs a device id" if self.message_type.is_device else "takes no device id"
            raise TopicError("bad_topic", f"Sparkplug {self.message_type.value} {need}")
        if self.device_id is not None:
            _check_id(self.device_id, "device id")

    def __str__(self) -> str:
        levels = [NAMESPACE, self.group, self.message_type.value, self.edge_node]
        return "/".join([*levels, self.device_id] if self.device_id is not None else levels)


@lru_cache(maxsize=200_000)
def parse_topic(topic: str) -> SparkplugTopic:
    """Parse a Sparkplug B topic; raise `TopicError` naming what is wrong.

    Cached: a node's topics repeat with every message (errors are not cached).
    """
    parts = topic.split("/")
    if parts[0] != NAMESPACE or len(parts) not in (4, 5):
        raise TopicError("bad_topic", f"topic {topic!r} is not {NAMESPACE}/group/TYPE/edge[/device]")
    try:
        return SparkplugTopic(parts[1], _message_type(parts[2]), parts[3], *parts[4:])
    except TopicError as exc:
        raise TopicError(exc.reason, f"topic {topic!r}: {exc}") from None


def node_topic(group: str, message_type: MessageType, edge_node: str) -> str:
    """The topic of a node-level message (NBIRTH, NDATA, NDEATH, NCMD)."""
    return str(SparkplugTopic(group, message_type, edge_node))


def device_topic(group: str, message_type: MessageType, edge_node: str, device_id: str) -> str:
    """The topic of a device-level message (DBIRTH, DDATA, DDEATH, DCMD)."""
    return str(SparkplugTopic(group, message_type, edge_node, device_id))


def host_subscriptions(group: str = "+") -> tuple[str, ...]:
    """Topic filters a host application (fmon ingest) subscribes to: births, data and deaths.

    Commands are left out on purpose: fmon publishes NCMD itself and must not read it back.
    """
    if group != "+":
        _check_id(group, "group id")
    node = (MessageType.NBIRTH, MessageType.NDATA, MessageType.NDEATH)
    device = (MessageType.DBIRTH, MessageType.DDATA, MessageType.DDEATH)
    return (
        *(f"{NAMESPACE}/{group}/{t.value}/+" for t in node),
        *(f"{NAMESPACE}/{group}/{t.value}/+/+" for t in device),
    )


def _message_type(value: str) -> MessageType:
    try:
        return MessageType(value)
    except ValueError:
        raise TopicError("bad_message_type", f"unknown Sparkplug message type {value!r}") from None


def _check_id(value: str, what: str) -> None:
    try:
        validate_id(value, what)
    except ValueError as exc:
        raise TopicError("bad_id", str(exc)) from None
