"""ingest.decode: valid payloads become readings; every bad one is refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from core.domain import DeviceRef, Family
from core.errors import ContractError
from ingest.decode import PresenceChange, decode
from ingest.mqtt import Message
from ingest.processor import decode_batch

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
        (TOPIC, b'{"metrics": {"lel_pct": NaN}}', "bad_json"),
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
        ("fmon/v1/s1/gateway/gw/batch", orjson.dumps({"readings": [{"family": "env"}]}), "bad_batch"),
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
