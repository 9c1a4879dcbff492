"""The v1 MQTT contract as an AsyncAPI 3.0 document, generated from `core.schema`.

The same schema drives the ingest validator and the simulators, so the published document and
fmon can never disagree. `fmon contract asyncapi > docs/asyncapi.yaml` refreshes the copy kept
in the repository (a test checks it is current).
"""

from __future__ import annotations

from typing import Any

from core.domain import ID_PATTERN, Family
from core.schema import (
    ELEVATOR_FAULT_CODES,
    EVENT_ATTR_NAME,
    EVENT_ATTRS,
    FAMILY_EVENTS,
    FAMILY_METRICS,
    FIRE_COMPONENT_TYPES,
    MAX_ATTR_TEXT,
    MAX_EVENT_ATTRS,
    MAX_EVENTS,
    METER_KIND_METRICS,
    RESERVED_EVENT_ATTRS,
    MetricSpec,
)
from core.topics import ROOT

MAX_BATCH = 1000
_ID = {"type": "string", "pattern": f"^{ID_PATTERN.pattern}$"}


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for family in Family:
        name = f"telemetry_{family.value}"
        channels[name] = _channel(f"{ROOT}/{{site}}/{family.value}/{{device_id}}/telemetry", f"reading_{family.value}",
                                  f"One reading of a `{family.value}` device.", "device_id")
        messages[f"reading_{family.value}"] = _message(f"reading_{family.value}", f"Reading ({family.value})")
        schemas[f"reading_{family.value}"] = reading_schema(family)
        operations[f"receive_{name}"] = _receive(name, f"fmon accepts {family.value} readings.")
    channels.update(_other_channels())
    messages.update(_other_messages())
    schemas.update({"batch": batch_schema(), "status": {"type": "string", "enum": ["online", "offline"]},
                    "command": command_schema(), "command_ack": command_ack_schema()})
    for name, action, text in (("gateway_batch", "receive", "fmon accepts gateway batches."),
                               ("gateway_status", "receive", "Gateways announce presence (retained; Will)."),
                               ("device_status", "receive", "Directly connected devices announce presence."),
                               ("command", "send", "fmon sends commands to devices."),
                               ("command_ack", "receive", "Devices acknowledge commands.")):
        operations[f"{action}_{name}"] = {"action": action, "channel": {"$ref": f"#/channels/{name}"},
                                           "summary": text}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "fmon device contract", "version": "1.0.0", "description": _DESCRIPTION},
        "defaultContentType": "application/json",
        "channels": channels, "operations": operations,
        "components": {"messages": messages, "schemas": schemas, "x-elevator-fault-codes": {
            str(code): {"zh": zh, "en": en} for code, (zh, en) in ELEVATOR_FAULT_CODES.items()},
            "x-meter-kinds": {kind.value: list(metrics) for kind, metrics in METER_KIND_METRICS.items()},
            "x-fire-component-types": {str(code): {"zh": zh, "en": en}
                                       for code, (zh, en) in FIRE_COMPONENT_TYPES.items()},
            "x-dead-letter-reasons": list(DEAD_LETTER_REASONS)},
    }


def metric_schema(spec: MetricSpec) -> dict[str, Any]:
    by_type: dict[str, dict[str, Any]] = {
        "boolean": {"type": "boolean"}, "enum": {"type": "string", "enum": list(spec.choices)},
        "integer": {"type": "integer"}, "number": {"type": "number"}}
    schema = by_type[spec.type]
    if spec.minimum is not None:
        schema["minimum"] = spec.minimum
    if spec.maximum is not None:
        schema["maximum"] = spec.maximum
    if spec.unit:
        schema["x-unit"] = spec.unit
    if spec.description:
        schema["description"] = spec.description
    return schema


def reading_schema(family: Family, *, in_batch: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "ts": {"description": "ISO-8601 with offset, or epoch milliseconds; defaults to arrival time. Send it: "
                              "a QoS 1 message redelivered after a crash of fmon is then stored once (it overwrites "
                              "itself); without `ts` it gets a second arrival time and is stored twice",
               "oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]},
        "seq": {"type": "integer", "minimum": 0, "description": "per-device counter; gaps are counted"},
        "metrics": {"type": "object", "additionalProperties": False,
                    "properties": {s.name: metric_schema(s) for s in FAMILY_METRICS[family]}},
        "events": {"type": "array", "maxItems": MAX_EVENTS, "items": event_schema(family)},
        "historical": {"type": "boolean", "default": False,
                       "description": "store-and-forward replay: stored, never raises or clears alarms"},
    }
    required = ["device_id", "family"] if in_batch else []
    if in_batch:
        properties = {"device_id": _ID, "family": {"const": family.value}, **properties}
    # metrics, events or both: a fire panel may send point events alone
    some = [{"required": ["metrics"], "properties": {"metrics": {"minProperties": 1}}},
            {"required": ["events"], "properties": {"events": {"minItems": 1}}}]
    return {"type": "object", "required": required, "anyOf": some, "properties": properties}


def event_schema(family: Family) -> dict[str, Any]:
    """One event: its code, typed attributes of the family, other scalar attributes."""
    typed: dict[str, Any] = {"code": {"type": "string", "enum": [e.code for e in FAMILY_EVENTS[family]]}}
    for spec in EVENT_ATTRS[family]:
        if spec.type == "text":
            typed[spec.name] = {"type": "string", "maxLength": spec.maximum, "description": spec.description}
        else:
            typed[spec.name] = {"type": "integer", "minimum": spec.minimum, "maximum": spec.maximum,
                                "description": spec.description}
    free = {"oneOf": [{"type": "string", "maxLength": MAX_ATTR_TEXT}, {"type": "number"}, {"type": "boolean"}]}
    return {"type": "object", "required": ["code"], "properties": typed, "additionalProperties": free,
            "maxProperties": MAX_EVENT_ATTRS + 1,
            "propertyNames": {"pattern": f"^{EVENT_ATTR_NAME.pattern}$",
                              "not": {"enum": sorted(RESERVED_EVENT_ATTRS - {"code"})}},
            "description": "An event and its attributes; stored in the `events` measurement"}


def batch_schema() -> dict[str, Any]:
    return {"type": "object", "required": ["readings"], "properties": {"readings": {
        "type": "array", "minItems": 1, "maxItems": MAX_BATCH,
        "items": {"oneOf": [reading_schema(f, in_batch=True) for f in Family]}}}}


def command_schema() -> dict[str, Any]:
    return {"type": "object", "required": ["id", "command"], "properties": {
        "id": {"type": "string"}, "command": {"type": "string", "examples": ["close_valve", "start_fan", "recall"]},
        "args": {"type": "object"}}}


def command_ack_schema() -> dict[str, Any]:
    return {"type": "object", "required": ["id", "status"], "properties": {
        "id": {"type": "string"}, "status": {"type": "string", "enum": ["done", "rejected"]},
        "reason": {"type": "string"}}}


def _other_channels() -> dict[str, Any]:
    return {
        "gateway_batch": _channel(f"{ROOT}/{{site}}/gateway/{{gateway_id}}/batch", "batch",
                                  f"Up to {MAX_BATCH} readings of any devices behind one gateway. Each reading is "
                                  "checked on its own: a bad one is dead-lettered under its device with its own "
                                  "reason, the others are stored.", "gateway_id"),
        "gateway_status": _channel(f"{ROOT}/{{site}}/gateway/{{gateway_id}}/status", "status",
                                   "Retained `online`/`offline`; `offline` is the gateway's MQTT Will.", "gateway_id"),
        "device_status": _channel(f"{ROOT}/{{site}}/{{family}}/{{device_id}}/status", "status",
                                  "Retained `online`/`offline` of a directly connected device.", "device_id", True),
        "command": _channel(f"{ROOT}/{{site}}/{{family}}/{{device_id}}/command", "command",
                            "A command from fmon to a device.", "device_id", True),
        "command_ack": _channel(f"{ROOT}/{{site}}/{{family}}/{{device_id}}/command/ack", "command_ack",
                                "The device's answer to a command.", "device_id", True),
    }


def _other_messages() -> dict[str, Any]:
    return {name: _message(name, title) for name, title in (
        ("batch", "Gateway batch"), ("status", "Presence"), ("command", "Command"), ("command_ack", "Command ack"))}


def _channel(address: str, message: str, description: str, id_param: str, family: bool = False) -> dict[str, Any]:
    parameters: dict[str, Any] = {"site": {"description": "site (property project) id, [A-Za-z0-9_-]{1,64}"},
                                  id_param: {"description": f"{id_param}, [A-Za-z0-9_-]{{1,64}}"}}
    if family:
        parameters["family"] = {"enum": [f.value for f in Family], "description": "device family"}
    return {"address": address, "description": description, "parameters": parameters,
            "messages": {message: {"$ref": f"#/components/messages/{message}"}}}


def _message(name: str, title: str) -> dict[str, Any]:
    return {"name": name, "title": title, "payload": {"$ref": f"#/components/schemas/{name}"}}


def _receive(channel: str, summary: str) -> dict[str, Any]:
    return {"action": "receive", "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary}


# Every reason a dead letter can carry (README, "For gateway authors", explains each).
DEAD_LETTER_REASONS = (
    "bad_json", "bad_encoding", "not_finite", "bad_topic", "bad_id", "unknown_family", "missing_metrics",
    "unknown_metric", "bad_value", "unknown_event", "bad_events", "bad_timestamp", "future_timestamp",
    "ancient_timestamp", "bad_seq", "bad_historical", "bad_batch", "bad_status", "oversized", "unknown_device",
    "unknown_site", "bad_protobuf", "bad_message_type", "no_birth", "unknown_alias", "missing_family", "bad_family",
    "missing_name", "null_value", "stale_death", "store_rejected", "decoder_error",
)

_DESCRIPTION = (
    "How device gateways publish to fmon (v1). Publish with QoS 1 and a `ts` on every reading (exactly-once "
    "storage across redeliveries). Anything that breaks this contract "
    "(invalid JSON or UTF-8, unknown metric or event, wrong type, out of range, NaN/Inf, a timestamp more than "
    "5 minutes ahead or a year old, payloads over 256 KiB, batches over 1000 readings, bad ids) is not lost: "
    "it is kept in fmon's dead-letter store with the reason, visible to engineers at GET /api/v1/dead-letters. "
    "Sparkplug B (spBv1.0/{site}/...) is accepted too; see docs/sparkplug.md."
)
