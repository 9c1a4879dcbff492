"""The v1 MQTT topic contract (DESIGN.md §3): topic builders and the parser.

Builders validate ids, so fmon never publishes a topic it would itself reject. The parser
raises `TopicError` naming what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from core.domain import DeviceRef, Family, validate_id
from core.errors import TopicError

ROOT = "fmon/v1"
INTERNAL_ROOT = "fmon/internal"
ALARM_EVENTS_TOPIC = f"{INTERNAL_ROOT}/v1/alarm-events"
INCIDENT_EVENTS_TOPIC = f"{INTERNAL_ROOT}/v1/incident-events"
GATEWAY = "gateway"


class TopicKind(StrEnum):
    TELEMETRY = "telemetry"
    STATUS = "status"
    COMMAND = "command"
    COMMAND_ACK = "command_ack"
    BATCH = "batch"
    GATEWAY_STATUS = "gateway_status"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """A parsed v1 topic. `device` is set for device topics, `gateway_id` for gateway ones."""

    kind: TopicKind
    site: str
    device: DeviceRef | None = None
    gateway_id: str | None = None


def telemetry_topic(device: DeviceRef) -> str:
    return f"{_device_prefix(device)}/telemetry"


def status_topic(device: DeviceRef) -> str:
    return f"{_device_prefix(device)}/status"


def command_topic(device: DeviceRef) -> str:
    return f"{_device_prefix(device)}/command"


def command_ack_topic(device: DeviceRef) -> str:
    return f"{_device_prefix(device)}/command/ack"


def gateway_batch_topic(site: str, gateway_id: str) -> str:
    return f"{_gateway_prefix(site, gateway_id)}/batch"


def gateway_status_topic(site: str, gateway_id: str) -> str:
    return f"{_gateway_prefix(site, gateway_id)}/status"


def subscriptions(site: str = "+") -> tuple[str, ...]:
    """Topic filters an ingest worker subscribes to (one site, or `+` for all).

    Everything under the site, not just the valid topics: a gateway publishing to a wrong
    topic gets a dead letter saying so instead of silence. Command topics come back too and
    are ignored by the decoder."""
    return (f"{ROOT}/{site}/#",)


@lru_cache(maxsize=200_000)
def parse_topic(topic: str) -> ParsedTopic:
    """Parse a v1 topic; raise `TopicError` for anything outside the contract.

    Cached: a site's topics repeat with every reading (errors are not cached)."""
    parts = topic.split("/")
    if len(parts) < 6 or parts[0] != "fmon" or parts[1] != "v1":
        raise TopicError("bad_topic", f"topic {topic!r} is not under {ROOT}/")
    site, segment, ident, tail = parts[2], parts[3], parts[4], parts[5:]
    try:
        validate_id(site, "site id")
        validate_id(ident, "gateway id" if segment == GATEWAY else "device id")
    except ValueError as exc:
        raise TopicError("bad_id", f"topic {topic!r}: {exc}") from None
    if segment == GATEWAY:
        return _parse_gateway(topic, site, ident, tail)
    return _parse_device(topic, site, segment, ident, tail)


def _parse_gateway(topic: str, site: str, gateway_id: str, tail: list[str]) -> ParsedTopic:
    kinds: dict[tuple[str, ...], TopicKind] = {("batch",): TopicKind.BATCH, ("status",): TopicKind.GATEWAY_STATUS}
    kind = kinds.get(tuple(tail))
    if kind is None:
        raise TopicError("bad_topic", f"topic {topic!r}: unknown gateway topic {'/'.join(tail)!r}")
    return ParsedTopic(kind, site, gateway_id=gateway_id)


def _parse_device(topic: str, site: str, family: str, device_id: str, tail: list[str]) -> ParsedTopic:
    try:
        device = DeviceRef(site, Family(family), device_id)
    except ValueError:
        raise TopicError("unknown_family", f"topic {topic!r}: unknown device family {family!r}") from None
    kinds = {
        ("telemetry",): TopicKind.TELEMETRY,
        ("status",): TopicKind.STATUS,
        ("command",): TopicKind.COMMAND,
        ("command", "ack"): TopicKind.COMMAND_ACK,
    }
    kind = kinds.get(tuple(tail))
    if kind is None:
        raise TopicError("bad_topic", f"topic {topic!r}: unknown device topic {'/'.join(tail)!r}")
    return ParsedTopic(kind, site, device=device)


def _device_prefix(device: DeviceRef) -> str:
    return f"{ROOT}/{device.site}/{device.family.value}/{device.device_id}"


def _gateway_prefix(site: str, gateway_id: str) -> str:
    validate_id(site, "site id")
    validate_id(gateway_id, "gateway id")
    return f"{ROOT}/{site}/{GATEWAY}/{gateway_id}"
