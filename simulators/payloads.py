"""v1 JSON payloads (DESIGN.md §3): one reading, a gateway batch, a command acknowledgement.

Not for: Sparkplug B (`core.sparkplug` encodes that).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from core.domain import Event, MetricValue, Reading
from simulators.timebase import iso_ms

MAX_BATCH = 1000  # the contract's limit of readings per gateway batch


def reading_body(ts: datetime, seq: int, metrics: Mapping[str, MetricValue], events: Iterable[Event] = (),
                 *, historical: bool = False) -> dict[str, Any]:
    """The JSON object of one reading; `events` and `historical` only when they say something."""
    body: dict[str, Any] = {"ts": iso_ms(ts), "seq": seq, "metrics": dict(metrics)}
    listed = [{"code": e.code, **e.attrs} for e in events]
    if listed:
        body["events"] = listed
    if historical:
        body["historical"] = True
    return body


def telemetry_payload(reading: Reading, *, historical: bool = False) -> bytes:
    return orjson.dumps(reading_body(reading.ts, reading.seq or 0, reading.metrics, reading.events,
                                     historical=historical or reading.historical))


def batch_payloads(readings: Sequence[Reading], *, historical: bool = False,
                   limit: int = MAX_BATCH) -> list[bytes]:
    """Gateway batches of at most `limit` readings, each reading naming its device and family."""
    out = []
    for start in range(0, len(readings), limit):
        items = []
        for reading in readings[start:start + limit]:
            body = reading_body(reading.ts, reading.seq or 0, reading.metrics, reading.events,
                                historical=historical or reading.historical)
            items.append({"device_id": reading.device.device_id, "family": reading.device.family.value, **body})
        out.append(orjson.dumps({"readings": items}))
    return out


def ack_payload(command_id: str | None, status: str, reason: str | None = None) -> bytes:
    body: dict[str, Any] = {"id": command_id, "status": status}
    if reason:
        body["reason"] = reason
    return orjson.dumps(body)
