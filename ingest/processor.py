"""Turns batches of MQTT messages into readings, presence changes and dead letters.

Per batch: decode → dead-letter the rejections → append the readings to the durable spool →
acknowledge the messages → hand the live readings on. What happens to them next (rules,
alarms) is the caller's business: the runtime passes `on_readings`, so ingest does not depend
on the layers above it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.domain import Reading
from core.errors import ContractError
from ingest.decode import PresenceChange, decode
from ingest.mqtt import Ack, Message
from ingest.spool import Spool
from storage.state.dead_letters import DeadLetterStore, Rejection

log = logging.getLogger(__name__)


@dataclass
class IngestCounters:
    """Running totals, exposed as metrics."""

    messages: int = 0
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_by_device: Counter[str] = field(default_factory=Counter)
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    readings: list[Reading]
    presence: list[PresenceChange]
    rejections: list[Rejection]


def decode_batch(messages: Sequence[Message]) -> DecodedBatch:
    """Decode every message; a bad one becomes a `Rejection`, never an exception."""
    readings: list[Reading] = []
    presence: list[PresenceChange] = []
    rejections: list[Rejection] = []
    for msg in messages:
        try:
            result = decode(msg.topic, msg.payload, msg.received_at)
        except ContractError as exc:
            rejections.append(_rejection(msg, exc.reason, str(exc)))
            continue
        except Exception as exc:  # a decoder bug must not lose the message
            log.exception("decoder failed on %s", msg.topic)
            rejections.append(_rejection(msg, "decoder_error", f"{type(exc).__name__}: {exc}"))
            continue
        if isinstance(result, list):
            readings.extend(result)
        elif result is not None:
            presence.append(result)
    return DecodedBatch(readings, presence, rejections)


class IngestProcessor:
    """Decodes batches, dead-letters rejections and hands readings on."""

    def __init__(self, dead_letters: DeadLetterStore, spool: Spool,
                 on_readings: Callable[[list[Reading]], None],
                 on_spooled: Callable[[], None] = lambda: None,
                 on_presence: Callable[[list[PresenceChange]], None] | None = None) -> None:
        self._dead_letters, self._spool = dead_letters, spool
        self._on_readings, self._on_spooled, self._on_presence = on_readings, on_spooled, on_presence
        self.counters = IngestCounters()

    def __call__(self, messages: list[Message], ack: Ack) -> None:
        batch = decode_batch(messages)
        if batch.rejections:
            self._dead_letters.add(batch.rejections)
        self._spool.append(batch.readings, messages[-1].received_at)
        ack()
        self._count(messages, batch)
        self._on_spooled()
        if batch.readings:
            self._on_readings(batch.readings)
        if batch.presence and self._on_presence is not None:
            self._on_presence(batch.presence)

    def _count(self, messages: list[Message], batch: DecodedBatch) -> None:
        c = self.counters
        c.messages += len(messages)
        c.readings += len(batch.readings)
        for r in batch.rejections:
            c.rejected[r.reason] += 1
            c.rejected_by_device[r.device_key or r.topic] += 1


def _rejection(msg: Message, reason: str, detail: str) -> Rejection:
    return Rejection(msg.received_at, msg.topic, reason, detail, msg.payload, _device_key(msg.topic))


def _device_key(topic: str) -> str | None:
    parts = topic.split("/")
    return "/".join(parts[2:5]) if len(parts) >= 6 and parts[:2] == ["fmon", "v1"] else None
