"""Decoding v1 JSON payloads into validated readings.

`decode()` turns one MQTT message into readings, a gateway `Batch`, or a presence change, or
raises `ContractError` with a reason code; the consumer dead-letters those. A gateway batch is
not all-or-nothing: each reading that breaks the contract becomes a `BadReading` of its own
(its device, its reason, its excerpt) and the good readings of the batch are kept. Validation
follows the device schema in `core.schema`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from core.domain import DeviceRef, Event, MetricValue, Reading, device_ref
from core.errors import PayloadError
from core.schema import MAX_EVENT_ATTRS, MAX_EVENTS, check_event_attr, is_known_event, metric_spec
from core.topics import ParsedTopic, TopicKind, parse_topic

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH_READINGS = 1000
MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=366)  # store-and-forward older than this is a gateway clock fault
# orjson refuses NaN and Infinity (not JSON) and numbers beyond a double (1e999) while parsing;
# when the first error it reports is one of those, the gateway gets a reason of its own.
_NOT_FINITE_TOKEN = re.compile(rb"-?(?:NaN|Infinity)")


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A device or gateway announced itself online or offline (retained status / Will)."""

    site: str
    online: bool
    device: DeviceRef | None = None
    gateway_id: str | None = None


@dataclass(frozen=True, slots=True)
class BadReading:
    """One reading of a gateway batch that breaks the contract; the rest of the batch is kept."""

    error: PayloadError
    index: int  # position in the batch's `readings`
    device_key: str | None  # `site/family/device_id` when the reading names a valid device
    excerpt: bytes  # that reading alone, as JSON


class Batch(list[Reading]):
    """A decoded gateway batch: the readings that passed (the list itself, so a batch reads
    like the readings of a single message) and, in `rejected`, the ones that did not."""

    def __init__(self) -> None:
        super().__init__()
        self.rejected: list[BadReading] = []


Decoded = list[Reading] | PresenceChange | None  # a gateway batch's list is a `Batch`


def decode(topic: str, payload: bytes, received_at: datetime) -> Decoded:
    """Decode one message. Returns readings, a presence change, or None for topics to ignore."""
    parsed = parse_topic(topic)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("oversized", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if parsed.kind in (TopicKind.STATUS, TopicKind.GATEWAY_STATUS):
        return _presence(parsed, payload)
    if parsed.kind is TopicKind.TELEMETRY:
        assert parsed.device is not None
        return [reading_from_json(parsed.device, _json_object(payload), received_at)]
    if parsed.kind is TopicKind.BATCH:
        return _batch(parsed, _json_object(payload), received_at)
    return None


def reading_from_json(device: DeviceRef, body: Mapping[str, Any], received_at: datetime) -> Reading:
    """Validate one reading object (DESIGN.md §3) for `device`."""
    metrics = body.get("metrics", {})
    events = _events(device, body.get("events", []))
    if not isinstance(metrics, dict) or not (metrics or events):
        # an event-only message (a fire panel's point event) is a reading without metrics
        raise PayloadError("missing_metrics", f"{device.key}: needs a non-empty 'metrics' object or 'events'")
    return Reading(
        device=device,
        ts=_timestamp(device, body.get("ts"), received_at),
        metrics=_metrics(device, metrics),
        seq=_seq(device, body.get("seq")),
        events=events,
        historical=_historical(device, body.get("historical", False)),
    )


def _batch(parsed: ParsedTopic, body: Mapping[str, Any], received_at: datetime) -> Batch:
    items = body.get("readings")
    if not isinstance(items, list) or not items:
        raise PayloadError("bad_batch", "gateway batch needs a non-empty 'readings' list")
    if len(items) > MAX_BATCH_READINGS:
        raise PayloadError("oversized", f"batch of {len(items)} readings exceeds {MAX_BATCH_READINGS}")
    batch = Batch()
    for index, item in enumerate(items):
        device = None
        try:
            device = _batch_device(parsed.site, index, item)
            batch.append(reading_from_json(device, item, received_at))
        except PayloadError as exc:
            key = device.key if device is not None else None
            batch.rejected.append(BadReading(exc, index, key, orjson.dumps(item)))
    return batch


def _batch_device(site: str, index: int, item: object) -> DeviceRef:
    """The device a batch reading names; the topic's site is the only one a gateway may use."""
    if not isinstance(item, dict):
        raise PayloadError("bad_batch", f"batch reading {index} is not an object")
    try:
        return device_ref(site, item["family"], item["device_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError("bad_batch", f"batch reading {index}: bad family/device_id ({exc})") from None


def _presence(parsed: ParsedTopic, payload: bytes) -> PresenceChange:
    text = payload.decode("utf-8", errors="replace").strip().lower()
    if text not in ("online", "offline"):
        raise PayloadError("bad_status", f"status must be 'online' or 'offline', got {text[:40]!r}")
    return PresenceChange(parsed.site, text == "online", parsed.device, parsed.gateway_id)


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError("bad_encoding", f"payload is not UTF-8: {exc}") from None
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        if _is_not_finite(payload, exc):
            raise PayloadError("not_finite", f"NaN, Infinity or a number beyond a double at byte {exc.pos}: "
                                             "send finite numbers (or leave the metric out)") from None
        raise PayloadError("bad_json", f"payload is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise PayloadError("bad_json", "payload must be a JSON object")
    return body


def _is_not_finite(payload: bytes, exc: orjson.JSONDecodeError) -> bool:
    if "infinity" in exc.msg:  # orjson: "number is infinity when parsed as double"
        return True
    # NaN / Infinity: the error is at the token, or just after its minus sign
    return any(_NOT_FINITE_TOKEN.match(payload, at) for at in (exc.pos, max(exc.pos - 1, 0)))


def _timestamp(device: DeviceRef, raw: object, received_at: datetime) -> datetime:
    if raw is None:
        return received_at
    try:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            ts = datetime.fromtimestamp(raw / 1000, UTC)
        elif isinstance(raw, str):
            ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        else:
            raise ValueError(f"unsupported type {type(raw).__name__}")
    except (ValueError, OverflowError, OSError) as exc:
        raise PayloadError("bad_timestamp", f"{device.key}: bad ts {raw!r}: {exc}") from None
    if ts.tzinfo is None:
        raise PayloadError("bad_timestamp", f"{device.key}: ts {raw!r} has no UTC offset")
    ts = ts.astimezone(UTC)
    if ts > received_at + MAX_FUTURE:
        raise PayloadError("future_timestamp", f"{device.key}: ts {raw!r} is in the future")
    if ts < received_at - MAX_AGE:
        raise PayloadError("ancient_timestamp", f"{device.key}: ts {raw!r} is more than {MAX_AGE.days} days old")
    return ts


def _metrics(device: DeviceRef, raw: Mapping[str, Any]) -> dict[str, MetricValue]:
    metrics: dict[str, MetricValue] = {}
    for name, value in raw.items():
        spec = metric_spec(device.family, name)
        if spec is None:
            raise PayloadError("unknown_metric", f"{device.key}: {device.family.value} has no metric {name!r}")
        try:
            metrics[name] = spec.check(value)
        except ValueError as exc:
            raise PayloadError("bad_value", f"{device.key}: {exc}") from None
    return metrics


def _seq(device: DeviceRef, raw: object) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise PayloadError("bad_seq", f"{device.key}: seq must be a non-negative integer, got {raw!r}")
    return raw


def _events(device: DeviceRef, raw: object) -> tuple[Event, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_EVENTS:
        raise PayloadError("bad_events", f"{device.key}: events must be a list of at most {MAX_EVENTS}")
    events = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("code"), str):
            raise PayloadError("bad_events", f"{device.key}: each event needs a string 'code'")
        if not is_known_event(device.family, item["code"]):
            raise PayloadError("unknown_event", f"{device.key}: {device.family.value} has no event {item['code']!r}")
        events.append(Event(item["code"], _event_attrs(device, item)))
    return tuple(events)


def _event_attrs(device: DeviceRef, item: Mapping[str, Any]) -> dict[str, MetricValue]:
    """The attributes of one event (everything but `code`), checked against `core.schema`:
    they are stored as fields next to the event, so names and values must be safe there."""
    if len(item) > MAX_EVENT_ATTRS + 1:
        raise PayloadError("bad_events", f"{device.key}: an event has at most {MAX_EVENT_ATTRS} attributes")
    try:
        return {name: check_event_attr(device.family, name, value) for name, value in item.items() if name != "code"}
    except ValueError as exc:
        raise PayloadError("bad_events", f"{device.key}: event {item['code']!r}: {exc}") from None


def _historical(device: DeviceRef, raw: object) -> bool:
    if not isinstance(raw, bool):
        raise PayloadError("bad_historical", f"{device.key}: historical must be true or false")
    return raw
