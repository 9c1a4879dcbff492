"""ingest.decode and the processor: valid payloads become readings; every bad one is refused with a
reason; a batch that cannot be spooled is either retried or counted (dropped / left to the broker)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from core.domain import DeviceRef, Family, Reading
from core.errors import ContractError, StorageError
from ingest.decode import PresenceChange, decode
from ingest.mqtt import Message
from ingest.processor import IngestProcessor, decode_batch
from ingest.spool import Spool
from storage.state.database import StateDatabase
from storage.state.dead_letters import DeadLetterStore

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
TOPIC = "fmon/v1/s1/gas/gas-1/telemetry"


def body(**fields: object) -> bytes:
    return orjson.dumps({"ts": "2026-11-21T07:59:59.500Z", "seq": 7, "metrics": {"lel_pct": 3.2}, **fields})


def test_single_reading_is_decoded() -> None:
    payload = body(events=[{"code": "power_fault", "loop": 2}], metrics={"lel_pct": 3, "fan": False})
    [reading] = decode(TOPIC, payload, NOW)  # type: ignore[misc]
    assert reading.device == DeviceRef("s1", Family.GAS, "gas-1")
    assert reading.ts == datetime(2026, 11, 21, 7, 59, 59, 500000, tzinfo=UTC)
    assert dict(reading.metrics) == {"lel_pct": 3.0, "fan": False}
    assert reading.seq == 7
    assert reading.events[0].code == "power_fault"
    assert not reading.historical


def test_epoch_millis_and_missing_ts() -> None:
    [with_ms] = decode(TOPIC, orjson.dumps({"ts": 1_763_712_000_000, "metrics": {"lel_pct": 1}}), NOW)  # type: ignore[misc]
    assert with_ms.ts == datetime.fromtimestamp(1_763_712_000, UTC)
    [without] = decode(TOPIC, orjson.dumps({"metrics": {"lel_pct": 1}}), NOW)  # type: ignore[misc]
    assert without.ts == NOW


def test_gateway_batch() -> None:
    readings = [{"device_id": f"e{i}", "family": "env", "metrics": {"co2_ppm": 500 + i}} for i in range(3)]
    decoded = decode("fmon/v1/s1/gateway/gw-1/batch", orjson.dumps({"readings": readings}), NOW)
    assert isinstance(decoded, list)
    assert [r.device.device_id for r in decoded] == ["e0", "e1", "e2"]


def test_status_topics_are_presence() -> None:
    change = decode("fmon/v1/s1/gateway/gw-1/status", b"offline", NOW)
    assert change == PresenceChange("s1", False, None, "gw-1")


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (TOPIC, b"{not json", "bad_json"),
        (TOPIC, b"[1, 2]", "bad_json"),
        (TOPIC, b'{"metrics": {"lel_pct": NaN}}', "not_finite"),
        (TOPIC, b'{"metrics": {"lel_pct": -Infinity}}', "not_finite"),
        (TOPIC, b'{"metrics": {"lel_pct": 1e999}}', "not_finite"),
        (TOPIC, b'{"metrics": {"lel_pct": 1},, "note": NaN}', "bad_json"),  # broken before the NaN
        (TOPIC, b'{"metrics": {"lel_pct": 1}, "note": "NaN" oops}', "bad_json"),
        (TOPIC, orjson.dumps({"seq": 1}), "missing_metrics"),
        (TOPIC, orjson.dumps({"metrics": {}, "events": []}), "missing_metrics"),
        (TOPIC, body(events=[{"code": "power_fault", "Bad Name": 1}]), "bad_events"),
        (TOPIC, body(events=[{"code": "power_fault", "where": {"nested": 1}}]), "bad_events"),
        (TOPIC, body(events=[{"code": "power_fault", "seq": 1}]), "bad_events"),  # the store's own field
        ("fmon/v1/s1/fire_panel/fp-1/telemetry", orjson.dumps({"events": [{"code": "point_fire", "loop": "one"}]}),
         "bad_events"),
        (TOPIC, orjson.dumps({"metrics": {}}), "missing_metrics"),
        (TOPIC, orjson.dumps({"metrics": {"colour": 1}}), "unknown_metric"),
        (TOPIC, orjson.dumps({"metrics": {"lel_pct": "high"}}), "bad_value"),
        (TOPIC, orjson.dumps({"metrics": {"lel_pct": 1e9}}), "bad_value"),
        (TOPIC, orjson.dumps({"metrics": {"fan": 1}}), "bad_value"),
        (TOPIC, orjson.dumps({"metrics": {"valve": "ajar"}}), "bad_value"),
        (TOPIC, body(ts="2026-11-22T00:00:00Z"), "future_timestamp"),
        (TOPIC, body(ts="yesterday"), "bad_timestamp"),
        (TOPIC, body(ts="2020-01-01T00:00:00Z"), "ancient_timestamp"),
        (TOPIC, b"{\"metrics\": {\"lel_pct\": 1}, \"x\": \"\xff\xfe\"}", "bad_encoding"),
        (TOPIC, body(ts="2026-11-21T07:00:00"), "bad_timestamp"),
        (TOPIC, body(seq=-1), "bad_seq"),
        (TOPIC, body(historical="yes"), "bad_historical"),
        (TOPIC, body(events=[{"no": "code"}]), "bad_events"),
        (TOPIC, body(events=[{"code": "cover_open"}]), "unknown_event"),
        (TOPIC, b"x" * 300_000, "oversized"),
        ("fmon/v1/s1/gas/gas 1/telemetry", body(), "bad_id"),
        ("fmon/v1/s1/gateway/gw/batch", orjson.dumps({"readings": []}), "bad_batch"),
        ("fmon/v1/s1/gateway/gw/batch", orjson.dumps({"readings": {"e1": {}}}), "bad_batch"),
        ("fmon/v1/s1/gateway/gw/batch", orjson.dumps({"readings": [{}] * 1001}), "oversized"),
        ("fmon/v1/s1/gateway/gw/status", b"maybe", "bad_status"),
    ],
)
def test_bad_input_is_refused_with_a_reason(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as info:
        decode(topic, payload, NOW)
    assert info.value.reason == reason
    assert str(info.value)


def test_a_bad_message_in_a_batch_loses_nothing_else() -> None:
    good = Message(TOPIC, body(), NOW)
    bad = Message(TOPIC, b"{oops", NOW)
    ignored = Message("fmon/v1/s1/gas/gas-1/command", b"{}", NOW)
    batch = decode_batch([good, bad, good, ignored])
    assert len(batch.readings) == 2
    [rejection] = batch.rejections
    assert (rejection.reason, rejection.topic, rejection.excerpt) == ("bad_json", TOPIC, "{oops")


def test_excerpt_is_bounded() -> None:
    batch = decode_batch([Message(TOPIC, b"{" + b"x" * 2000, NOW)])
    assert batch.rejections[0].excerpt.endswith("…")
    assert len(batch.rejections[0].excerpt) == 513


def test_timestamps_slightly_ahead_are_accepted() -> None:
    ahead = (NOW + timedelta(minutes=4)).isoformat()
    assert decode(TOPIC, body(ts=ahead), NOW)


def test_an_event_only_message_is_a_reading_without_metrics() -> None:
    point = {"code": "point_fire", "loop": 1, "address": 23, "zone": "B1-F3", "component_type": 40}
    [reading] = decode("fmon/v1/s1/fire_panel/fp-1/telemetry", orjson.dumps({"seq": 3, "events": [point]}), NOW)  # type: ignore[misc]
    assert dict(reading.metrics) == {}
    assert (reading.events[0].code, dict(reading.events[0].attrs)) == (
        "point_fire", {"loop": 1, "address": 23, "zone": "B1-F3", "component_type": 40})


def test_each_bad_reading_of_a_gateway_batch_is_dead_lettered_on_its_own() -> None:
    """5 readings, the 3rd and the 5th bad: the other 3 are kept; each bad one is a dead letter
    of its own device, with its own reason and that reading as the excerpt."""
    items: list[dict[str, object]] = [
        {"device_id": f"e{i}", "family": "env", "seq": i, "metrics": {"co2_ppm": 500 + i}} for i in range(1, 6)]
    items[2]["metrics"] = {"co2_ppm": "lots"}
    items[4] = {"device_id": "bad id", "family": "env", "metrics": {"co2_ppm": 1}}
    topic = "fmon/v1/s1/gateway/gw-1/batch"
    batch = decode_batch([Message(topic, orjson.dumps({"readings": items}), NOW)])
    assert [r.device.device_id for r in batch.readings] == ["e1", "e2", "e4"]
    first, second = batch.rejections
    assert (first.reason, first.device_key, first.topic) == ("bad_value", "s1/env/e3", topic)
    assert first.detail.startswith("batch reading 2: s1/env/e3: co2_ppm must be a number")
    assert orjson.loads(first.payload) == items[2]
    assert (second.reason, second.device_key) == ("bad_batch", "s1/gateway/gw-1")  # no valid device named
    assert orjson.loads(second.payload) == items[4]


def test_a_batch_of_only_bad_readings_keeps_nothing_and_loses_nothing() -> None:
    items = [{"device_id": "e1", "family": "env", "metrics": {"radon": 1}}, "not an object"]
    batch = decode_batch([Message("fmon/v1/s1/gateway/gw-1/batch", orjson.dumps({"readings": items}), NOW)])
    assert batch.readings == []
    assert [(r.reason, r.device_key) for r in batch.rejections] == [
        ("unknown_metric", "s1/env/e1"), ("bad_batch", "s1/gateway/gw-1")]


class FlakySpool(Spool):
    """A spool whose disk fails while `failing` is set."""

    failing = False

    def append(self, readings: Sequence[Reading], now: datetime) -> None:
        if self.failing:
            raise StorageError("disk full")
        super().append(readings, now)


def test_a_batch_given_up_unspooled_is_counted_as_dropped_or_left_to_the_broker(tmp_path: Path) -> None:
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    spool = FlakySpool(tmp_path / "spool.db")
    processor = IngestProcessor(DeadLetterStore(db), spool, on_readings=lambda _r: None)
    acks: list[int] = []
    failed = [Message(TOPIC, body(), NOW, mid=1, qos=1), Message(TOPIC, body(), NOW), Message(TOPIC, body(), NOW)]
    spool.failing = True
    for _attempt in range(2):  # the consumer offers the same batch again
        with pytest.raises(StorageError):
            processor(failed, lambda: acks.append(1))
    c = processor.counters
    assert (c.accept_failures, c.unaccepted, c.dropped, acks) == (2, 3, 0, [])  # held, nothing lost yet

    spool.failing = False
    processor([Message(TOPIC, body(), NOW)], lambda: acks.append(1))  # the consumer gave up on it
    assert (c.dropped, c.abandoned, c.unaccepted, c.readings, acks) == (2, 1, 0, 1, [1])

    spool.failing = True
    with pytest.raises(StorageError):
        processor(failed, lambda: acks.append(1))
    processor.abandon()  # shutdown with a batch still failing
    assert (c.dropped, c.abandoned) == (4, 2)
    spool.close()
    db.dispose()


def test_a_batch_that_succeeds_on_retry_loses_nothing(tmp_path: Path) -> None:
    spool = FlakySpool(tmp_path / "spool.db")
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    processor = IngestProcessor(DeadLetterStore(db), spool, on_readings=lambda _r: None)
    batch = [Message(TOPIC, body(), NOW)]
    spool.failing = True
    with pytest.raises(StorageError):
        processor(batch, lambda: None)
    spool.failing = False
    processor(batch, lambda: None)
    processor.abandon()
    assert (processor.counters.dropped, processor.counters.readings, spool.depth) == (0, 1, 1)
    spool.close()
    db.dispose()


@pytest.mark.parametrize("memory_readings", [0, 4, 100_000])
def test_the_spool_gives_back_what_was_appended_from_memory_or_disk(tmp_path: Path, memory_readings: int) -> None:
    """Batches this process appended come from memory (up to the bound), the rest from disk,
    also after a restart; `take` stops at about `max_readings`, release forgets what it took."""
    device = DeviceRef("s1", Family.GAS, "gas-1")
    batches = [[Reading(device, NOW + timedelta(seconds=10 * b + i), {"lel_pct": float(b)}, seq=10 * b + i)
                for i in range(3)] for b in range(4)]
    spool = Spool(tmp_path / "spool.db", memory_readings=memory_readings)
    for batch in batches:
        spool.append(batch, NOW)
    first = spool.take(6)
    assert first is not None and first.readings == batches[0] + batches[1]
    spool.release(first)
    spool.close()
    reopened = Spool(tmp_path / "spool.db", memory_readings=memory_readings)  # a restart: nothing in memory
    rest = reopened.take(100)
    assert rest is not None and rest.readings == batches[2] + batches[3]
    assert reopened.depth == 6
    reopened.release(rest)
    assert reopened.take(100) is None
    reopened.close()
