"""Turns batches of MQTT messages into readings, presence changes and dead letters.

Per batch: decode → dead-letter the rejections → append the readings to the durable spool →
acknowledge the messages → hand the live readings on. What happens to them next (rules,
alarms) is the caller's business: the runtime passes `on_readings`, so ingest does not depend
on the layers above it.

When a batch cannot be made durable (spool or state database failing), the call raises and the
consumer offers the same batch again. If it gives up instead (it does only while stopping), the
batch is *abandoned*: its QoS 1 messages come back from the broker in the next session, its
QoS 0 messages are lost. Those are the only messages fmon itself can lose after receiving them
(`IngestCounters.dropped`); see docs/message-loss.md for the drops that happen in the broker.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.domain import DeviceRef, Reading
from core.errors import ContractError
from core.sparkplug import NAMESPACE
from ingest.decode import BadReading, Batch, Decoded, PresenceChange, decode
from ingest.mqtt import Ack, Message
from ingest.presence import PresenceEvent, PresenceTracker
from ingest.sparkplug import SparkplugDecoder, SparkplugResult
from ingest.spool import Spool
from storage.state.dead_letters import DeadLetterStore, Rejection

log = logging.getLogger(__name__)
SPARKPLUG_PREFIX = NAMESPACE + "/"


@dataclass
class IngestCounters:
    """Running totals, exposed as metrics."""

    messages: int = 0
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_by_device: Counter[str] = field(default_factory=Counter)
    dropped: int = 0  # QoS 0 messages of abandoned batches: received, never stored nor dead-lettered
    abandoned: int = 0  # QoS 1 messages of abandoned batches, left to the broker to redeliver
    accept_failures: int = 0  # attempts to make a batch durable that failed (it is offered again)
    unaccepted: int = 0  # messages of the batch failing right now, held in memory only


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    readings: list[Reading] = field(default_factory=list)
    presence: list[PresenceChange] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    rebirth: list[tuple[str, bytes]] = field(default_factory=list)  # Sparkplug NCMD requests to publish


Admit = Callable[[DeviceRef], str | None]  # None, or why the device is refused (registry)


def admit_all(_device: DeviceRef) -> str | None:
    return None


def decode_batch(messages: Sequence[Message], sparkplug: SparkplugDecoder | None = None,
                 admit: Admit = admit_all) -> DecodedBatch:
    """Decode every message (v1 JSON, or Sparkplug B when a decoder is given); a bad one
    becomes a `Rejection`, never an exception. Readings of devices `admit` refuses (not in the
    registry) are rejected with its reason; the rest of their message is kept."""
    out = DecodedBatch()
    for msg in messages:
        try:
            accepted = len(out.readings)
            if sparkplug is not None and msg.topic.startswith(SPARKPLUG_PREFIX):
                _add_sparkplug(out, msg, sparkplug.decode(msg.topic, msg.payload, msg.received_at))
            else:
                _add_json(out, msg, decode(msg.topic, msg.payload, msg.received_at))
            _refuse_unknown(out, msg, accepted, admit)
        except ContractError as exc:
            out.rejections.append(_rejection(msg, exc.reason, str(exc)))
        except Exception as exc:  # a decoder bug must not lose the message
            log.exception("decoder failed on %s", msg.topic)
            out.rejections.append(_rejection(msg, "decoder_error", f"{type(exc).__name__}: {exc}"))
    return out


def _refuse_unknown(out: DecodedBatch, msg: Message, first: int, admit: Admit) -> None:
    """Check this message's readings (those from index `first`); touch only them, so a batch of
    thousands of messages stays linear."""
    verdicts = [(reading, admit(reading.device)) for reading in out.readings[first:]]
    if all(reason is None for _, reason in verdicts):
        return
    del out.readings[first:]
    for reading, reason in verdicts:
        if reason is None:
            out.readings.append(reading)
        else:
            detail = f"{reading.device.key} is not in the device registry ({reason})"
            out.rejections.append(Rejection(msg.received_at, msg.topic, reason, detail, msg.payload,
                                            reading.device.key))


def _add_json(out: DecodedBatch, msg: Message, result: Decoded) -> None:
    if isinstance(result, list):
        out.readings.extend(result)
        if isinstance(result, Batch):
            out.rejections.extend(_bad_reading(msg, bad) for bad in result.rejected)
    elif result is not None:
        out.presence.append(result)


def _bad_reading(msg: Message, bad: BadReading) -> Rejection:
    """A dead letter for one reading of a gateway batch: counted against its own device (the
    gateway's topic when the reading names no valid device), with that reading as the excerpt."""
    detail = f"batch reading {bad.index}: {bad.error}"
    device_key = bad.device_key or _device_key(msg.topic)
    return Rejection(msg.received_at, msg.topic, bad.error.reason, detail, bad.excerpt, device_key)


def _add_sparkplug(out: DecodedBatch, msg: Message, result: SparkplugResult) -> None:
    out.readings.extend(result.readings)
    out.presence.extend(result.presence)
    out.rebirth.extend(result.rebirth)
    out.rejections.extend(_rejection(msg, exc.reason, str(exc)) for exc in result.rejections)


class IngestProcessor:
    """Decodes batches, dead-letters rejections and hands readings on."""

    def __init__(self, dead_letters: DeadLetterStore, spool: Spool,
                 on_readings: Callable[[list[Reading]], None],
                 on_spooled: Callable[[], None] = lambda: None,
                 presence: PresenceTracker | None = None,
                 on_presence: Callable[[list[PresenceEvent]], None] = lambda _events: None,
                 sparkplug: SparkplugDecoder | None = None,
                 publish: Callable[[str, bytes], None] = lambda _topic, _payload: None,
                 admit: Admit = admit_all) -> None:
        self._dead_letters, self._spool = dead_letters, spool
        self._sparkplug, self._publish, self._admit = sparkplug, publish, admit
        self._on_readings, self._on_spooled = on_readings, on_spooled
        self._presence, self._on_presence = presence, on_presence
        self.counters = IngestCounters()
        self._failing: list[Message] | None = None  # the batch whose last attempt failed

    def __call__(self, messages: list[Message], ack: Ack) -> None:
        if self._failing is not None and self._failing is not messages:
            self.abandon()  # the consumer moved on: the failed batch will not be offered again
        try:
            batch = self._accept(messages, ack)
        except Exception:
            self._failing = messages
            self.counters.accept_failures += 1
            self.counters.unaccepted = len(messages)
            raise
        self._failing, self.counters.unaccepted = None, 0
        self._count(messages, batch)
        self._on_spooled()
        if self._presence is not None:
            now = messages[-1].received_at
            events = self._presence.status(batch.presence, now) + self._presence.readings(batch.readings, now)
            if events:
                self._on_presence(events)
        if batch.readings:
            self._on_readings(batch.readings)

    def _accept(self, messages: list[Message], ack: Ack) -> DecodedBatch:
        """Decode, dead-letter and spool the batch, then acknowledge it; raises if any of that fails."""
        batch = decode_batch(messages, self._sparkplug, self._admit)
        for topic, payload in batch.rebirth:
            self._publish(topic, payload)
        if batch.rejections:
            self._dead_letters.add(batch.rejections)
        self._spool.append(batch.readings, messages[-1].received_at)
        ack()
        return batch

    def abandon(self) -> None:
        """Account for a failed batch the consumer will not offer again (also at shutdown)."""
        failing, self._failing = self._failing, None
        if failing is None:
            return
        qos0 = sum(1 for m in failing if m.qos == 0)
        self.counters.dropped += qos0
        self.counters.abandoned += len(failing) - qos0
        self.counters.unaccepted = 0
        log.error("gave up a batch that could not be spooled: %d QoS 0 messages lost, %d QoS 1 messages "
                  "left to the broker to redeliver", qos0, len(failing) - qos0)

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
    if len(parts) >= 6 and parts[:2] == ["fmon", "v1"]:
        return "/".join(parts[2:5])  # site/family/device
    if len(parts) >= 4 and parts[0] == NAMESPACE:
        return "/".join([parts[1], "sparkplug", *parts[3:5]])  # group/sparkplug/edge[/device]
    return None
